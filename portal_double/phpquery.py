"""PHP-style query strings: ``filter[>ID]=5&select[]=ID&cmd[a]=user.current``.

Bitrix24 is PHP, so form bodies, GET query strings and the strings inside ``batch`` ``cmd`` are
read the way PHP's ``parse_str`` reads them (DOCS settings/how-to-call-rest-api/data-encoding.md).
``build_query`` is the inverse (PHP ``http_build_query``), used by tests and the CLI.
"""

from __future__ import annotations

from urllib.parse import parse_qsl, quote


def _split_key(key: str) -> list[str | None]:
    """``a[b][][c]`` -> ``["a", "b", None, "c"]`` (None = append). Unbalanced brackets stay literal."""
    i = key.find("[")
    if i <= 0:
        return [key]
    parts: list[str | None] = [key[:i]]
    rest = key[i:]
    while rest.startswith("["):
        j = rest.find("]")
        if j < 0:
            break
        inner = rest[1:j]
        parts.append(None if inner == "" else inner)
        rest = rest[j + 1 :]
    # PHP ignores anything after the last closing bracket
    return parts


def _assign(target: dict, path: list[str | None], value) -> None:
    node = target
    for n, part in enumerate(path):
        last = n == len(path) - 1
        if part is None:  # append: PHP uses the next integer key
            ints = [int(k) for k in node if isinstance(k, str) and k.lstrip("-").isdigit()]
            part = str(max(ints) + 1 if ints else 0)
        if last:
            node[part] = value
        else:
            child = node.get(part)
            if not isinstance(child, dict):
                child = {}
                node[part] = child
            node = child


def listify(value):
    """PHP arrays with keys 0..n-1 become lists, recursively; other dicts stay dicts."""
    if isinstance(value, dict):
        out = {k: listify(v) for k, v in value.items()}
        keys = list(out)
        if keys and all(k.isdigit() for k in keys) and sorted(int(k) for k in keys) == list(range(len(keys))):
            return [out[str(i)] for i in range(len(keys))]
        return out
    if isinstance(value, list):
        return [listify(v) for v in value]
    return value


def parse_query(qs: str | bytes, *, keep_blank: bool = True) -> dict:
    """Parse a PHP-style query string into nested dicts/lists of strings."""
    if isinstance(qs, bytes):
        qs = qs.decode("utf-8", errors="replace")
    out: dict = {}
    for key, value in parse_qsl(qs, keep_blank_values=keep_blank):
        _assign(out, _split_key(key), value)
    return {k: listify(v) for k, v in out.items()}  # the top level stays a dict of parameters


def _flatten(prefix: str, value, pairs: list[tuple[str, str]]) -> None:
    if isinstance(value, dict):
        for k, v in value.items():
            _flatten(f"{prefix}[{k}]", v, pairs)
    elif isinstance(value, (list, tuple)):
        for i, v in enumerate(value):
            _flatten(f"{prefix}[{i}]", v, pairs)
    elif value is None:
        pairs.append((prefix, ""))
    elif value is True:
        pairs.append((prefix, "1"))
    elif value is False:
        pairs.append((prefix, "0"))
    else:
        pairs.append((prefix, str(value)))


def build_query(params: dict) -> str:
    """PHP ``http_build_query``: nested dicts/lists -> ``a[b][0]=x`` pairs, URL-encoded."""
    pairs: list[tuple[str, str]] = []
    for k, v in params.items():
        _flatten(str(k), v, pairs)
    return "&".join(f"{quote(k, safe='')}={quote(v, safe='')}" for k, v in pairs)
