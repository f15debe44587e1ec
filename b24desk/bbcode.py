"""Text we did not write, made safe for Bitrix24 BB-code; links limited to trusted hosts.

Everything the app pushes (``im.notify.system.add``, ``im.message.add``, ``log.blogpost.add``,
Disk file names) is BB-code (DOCS api-reference/chats/messages/index.md: ``[URL=…]``, ``[B]``,
``[USER=…]``…). Titles, people's and departments' names and line names come from the portal,
where any employee or customer can type ``[URL=http://evil.example]Reset your password[/URL]``.
Bitrix24 has no escape for BB-code, so :func:`text` shows brackets as their full-width forms
(``［`` ``］``: read the same, never parsed as a tag), breaks ``scheme://`` so no bare URL is
auto-linked, and folds line breaks, so a name can neither add a link nor forge a line of the
message. :func:`url` lets a link through only if it is http(s), cannot break out of ``[URL=…]``
and points at an allowed host (the portal's own, the app's own).
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit

_BRACKETS = str.maketrans({"[": "［", "]": "］"})
_SCHEME = re.compile(r"(?i)\b([a-z][a-z0-9+.\-]{1,15}):(?=//)")
_CONTROL = re.compile(r"[\x00-\x1f\x7f\u2028\u2029]+")
_WJ = "\u2060"  # word joiner: invisible, and no URL pattern matches across it
_URL_BAD = re.compile(r"[\s\[\]\"'<>\\\x00-\x1f\x7f]")


def text(value, max_len: int = 300) -> str:
    """Untrusted text as literal BB-code text (see the module docstring)."""
    s = "" if value is None else str(value)
    s = _CONTROL.sub(" ", s).translate(_BRACKETS)
    s = _SCHEME.sub(lambda m: m.group(1) + ":" + _WJ, s)
    s = re.sub(r"(?i)\bwww\.", "www" + _WJ + ".", s)
    return s if len(s) <= max_len else s[: max_len - 1] + "…"


def file_name(value, max_len: int = 120) -> str:
    """A Disk file name from untrusted parts: no path separators, brackets or control characters."""
    s = text(value, max_len).replace(_WJ, "")
    return re.sub(r"[\\/:*?\"<>|]+", "_", s).strip(" .") or "file"


def host_of(value: str | None) -> str:
    """``host[:port]`` of a URL or a bare domain, lower-case."""
    if not value:
        return ""
    v = str(value)
    return (urlsplit(v).netloc if "://" in v else v.split("/")[0]).lower()


def url(value, allowed_hosts) -> str | None:
    """``value`` if it is an http(s) URL on one of ``allowed_hosts`` that cannot break out of a
    ``[URL=…]`` tag; else None (the caller leaves the link out)."""
    if not value or not isinstance(value, str) or len(value) > 2000 or _URL_BAD.search(value):
        return None
    try:
        parts = urlsplit(value)
    except ValueError:
        return None
    if parts.scheme not in ("http", "https") or not parts.netloc or "@" in parts.netloc:
        return None
    allowed = {host_of(h) for h in allowed_hosts if h}
    return value if parts.netloc.lower() in allowed else None
