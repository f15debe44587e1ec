"""The errors every Bitrix24 call may raise, and ``mask`` that keeps secrets out of their text.

Their own module so the client and the installation store (which refreshes tokens and raises the
same errors) need not import each other.
"""

from __future__ import annotations

import re

# --- errors -----------------------------------------------------------------------------------


class B24Error(Exception):
    """A non-retryable API error (or retries exhausted). ``code`` is Bitrix24's ``error``."""

    def __init__(self, status: int | None, code: str, description: str = "", method: str | None = None):
        self.status, self.code, self.description, self.method = status, str(code), description or "", method
        where = f"{method}: " if method else ""
        http = f" (HTTP {status})" if status else ""
        text = f"{where}{self.code}{http}"
        if self.description:
            text += f": {self.description}"
        if self.code.upper() == "WRONG_AUTH_TYPE":
            text += " (this method needs an installed application's OAuth token, not a webhook)"
        super().__init__(mask(text))


class ShapeError(B24Error):
    """A 200 answer whose ``result`` is not of the documented shape. Never read as "nothing": the
    sync stops before its cursor moves, and the next run reads the same changes again."""

    def __init__(self, method: str, what: str):
        super().__init__(
            None, "UNEXPECTED_ANSWER", f"the portal's answer is not of the documented shape: {what}", method
        )


def brief(value, n: int = 80) -> str:
    """A value cut short for an error message (secrets masked)."""
    text = repr(value)
    return mask(text if len(text) <= n else text[:n] + "...")


class AuthError(B24Error):
    """A 401 the refresh did not cure, an invalid refresh token, or a webhook the portal refuses."""


class B24Unavailable(B24Error):
    """The portal stayed unavailable (503/5xx/connection errors) through every retry."""


# --- never log secrets ------------------------------------------------------------------------

_SECRET_PATTERNS = [
    (re.compile(r"(/rest/\d+/)[^/?#\s\"']+"), r"\1***"),
    (
        re.compile(r"((?:auth|access_token|refresh_token|client_secret|AUTH_ID|REFRESH_ID|code)=)[^&\s\"']+", re.I),
        r"\1***",
    ),
    (re.compile(r"(['\"](?:auth|access_token|refresh_token|client_secret)['\"]\s*:\s*['\"])[^'\"]+", re.I), r"\1***"),
]


def mask(text: str) -> str:
    """Hide webhook secrets and token/secret parameters in a URL or message."""
    for pattern, repl in _SECRET_PATTERNS:
        text = pattern.sub(repl, text)
    return text
