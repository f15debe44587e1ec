"""The message catalogue: every key the templates and page code use exists in Russian and English."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from b24desk.text import i18n
from reports import saved_i18n

ROOT = Path(__file__).resolve().parent.parent / "reports"


def used_keys(saved: bool = False) -> set:
    """Keys used by the pages; ``saved``: those of the saved-report pages (their own catalogue,
    reports/saved_i18n.py, falling back to the main one)."""
    keys = set()
    for path in list((ROOT / "templates").rglob("*.html")) + list(ROOT.glob("*.py")):
        if path.name.startswith("saved_") != saved:
            continue
        text = path.read_text(encoding="utf-8")
        keys |= set(re.findall(r"""\b(?:t|ts)\(\s*['"]([a-z0-9_.]+)['"]""", text))
    return keys


@pytest.mark.parametrize("saved", [False, True])
def test_every_used_key_is_translated(saved):
    messages = dict(i18n.MESSAGES, **(saved_i18n.MESSAGES if saved else {}))
    missing = []
    for key in used_keys(saved):
        if key.endswith("_"):  # a prefix completed at run time (role_ ~ viewer.role)
            assert [k for k in messages if k.startswith(key)], key
            continue
        if key.startswith("kpi."):
            if key[4:] not in i18n.KPI_LABELS:
                missing.append(key)
        elif key not in messages:
            missing.append(key)
    assert not missing, missing


def test_both_languages_everywhere():
    for table in (i18n.MESSAGES, i18n.KPI_LABELS, saved_i18n.MESSAGES):
        for key, pair in table.items():
            assert len(pair) == 2 and all(isinstance(x, str) and x for x in pair), key
    assert i18n.t("kpi.csat", "ru") == "Удовлетворённость (CSAT)"
    assert i18n.t("kpi.csat", "en") == "Satisfaction (CSAT)"
    assert i18n.t("no_such_key", "ru") == "no_such_key"
    assert set(i18n.catalogue("ru")) == set(i18n.catalogue("en"))


def test_every_engine_kpi_has_a_label():
    from b24desk.kpi.engine import KPI_KEYS

    assert not [k for k in KPI_KEYS if k not in i18n.KPI_LABELS and not k.endswith("_business")]
