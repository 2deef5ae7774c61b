"""One place that hides secrets before anything is written, shown or logged: passwords in
URLs (`mqtt://user:***@host`) and the values of secret-named keys (password, token,
secret, command_key, api_key) anywhere in a nested configuration."""

from __future__ import annotations

import re
from typing import Any

MASK = "***"
SECRET_KEYS = re.compile(r"(password|passwd|token|secret|command_key|api_key)$", re.I)
URL_CREDENTIALS = re.compile(r"(?P<scheme>[a-zA-Z][a-zA-Z0-9+.-]*://)(?P<user>[^/@:\s]*)"
                             r"(?::(?P<password>[^/@\s]*))?@")


def redact_text(text: str) -> str:
    """A string with the passwords of any URLs in it masked."""
    def mask(m: re.Match) -> str:
        if m.group("password") is None:
            return m.group(0)
        return f"{m.group('scheme')}{m.group('user')}:{MASK}@"
    return URL_CREDENTIALS.sub(mask, text)


def redact(value: Any, key: str = "") -> Any:
    """A copy of a nested dict/list/str structure with secrets masked."""
    if isinstance(value, dict):
        return {k: redact(v, str(k)) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [redact(v, key) for v in value]
    if key and SECRET_KEYS.search(key) and value not in ("", None):
        return MASK
    if isinstance(value, str):
        return redact_text(value)
    return value
