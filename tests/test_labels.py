"""The one KPI label table (b24desk/labels.py): complete, the same in pages, exports and pushes."""

from __future__ import annotations

import re

from b24desk import labels
from b24desk.kpi import formats
from b24desk.kpi.engine import KPI_KEYS
from b24desk.text import i18n

SNAKE = re.compile(r"\b[a-z]+_[a-z_]+\b")


def test_every_kpi_has_names_units_groups_and_definitions_in_both_languages():
    assert set(labels.KPIS) == set(KPI_KEYS)
    for key, k in labels.KPIS.items():
        assert k.group in labels.GROUPS and k.unit in labels.UNIT_NAMES, key
        for i, lang in enumerate(labels.LANGS):
            for text in (k.name[i], k.definition[i]) + ((k.short[i],) if k.short else ()):
                assert text.strip() and not SNAKE.search(text), (key, lang, text)
        assert re.search("[а-яё]", k.name[0] + k.definition[0], re.I), key
        assert not re.search("[а-яё]", k.name[1] + k.definition[1], re.I), key


def test_pages_exports_and_pushes_read_the_same_table():
    for key in KPI_KEYS:
        for lang in ("ru", "en"):
            assert i18n.kpi_label(key, lang) == labels.kpi_label(key, lang)
        assert formats.LABELS[key] == labels.KPIS[key].name


def test_unknown_key_reads_as_words():
    assert labels.kpi_label("some_new_kpi", "ru") == "some new kpi"
    assert labels.empty_group("department", "ru") == "Без отдела"
    assert labels.empty_group("agent", "ru") == "Не назначено"


def test_histogram_counts_each_duration_once_in_its_bin():
    """The chart's bins: a value ``v`` in bin ``v // width`` (the last bin open-ended), counted
    from the sorted values cut at the edges; a negative duration (clock skew) in the first bin."""
    import random

    from b24desk.text.present import histogram

    rnd = random.Random(7)
    for n in (1, 2, 13, 500):
        values = [
            rnd.choice((0, 59, 60, 61, 3600)) if rnd.random() < 0.3 else rnd.randrange(0, 20000) for _ in range(n)
        ]
        for target in (None, 3600):
            h = histogram(values + [None], lang="ru", target=target)
            width, bins = h["bins"][1][0], len(h["counts"])
            want = [0] * bins
            for v in values:
                want[min(bins - 1, int(v // width))] += 1
            assert h["counts"] == want and sum(h["counts"]) == n
    assert histogram([-30, 10, 20, 5000], lang="en")["counts"][0] == 3
    assert histogram([None]) is None
