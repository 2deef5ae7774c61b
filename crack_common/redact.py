"""One place that hides secrets before anything is written, shown or logged: passwords in
URLs (`mqtt://user:***@host`) and the values of secret-named keys (password, token,
secret, command_key, api_key) anywhere in a nested configuration."""

from __future__ import annotations

import re
from typing import Any, Optional

MASK = "***"
SECRET_KEYS = re.compile(r"(password|passwd|token|secret|command_key|api_key)$", re.I)
# in free text: a password runs to the last "@" before a space or "/" (it may hold "@")
URL_CREDENTIALS = re.compile(r"(?P<scheme>[a-zA-Z][a-zA-Z0-9+.-]*://)(?P<user>[^/@:\s]*)"
                             r"(?::(?P<password>[^/\s]*))?@")
WHOLE_URL = re.compile(r"(?P<scheme>[a-zA-Z][a-zA-Z0-9+.-]*://)(?P<netloc>[^/?#]*)(?P<rest>.*)",
                       re.S)


def _redact_url(text: str) -> Optional[str]:
    """`text` as one URL with its password masked, read as urlsplit and paho read it (the
    user info runs to the netloc's last "@", so a password may hold "@", ":" or spaces);
    None when it is no URL with a password."""
    m = WHOLE_URL.fullmatch(text)
    if not m or "@" not in m.group("netloc"):
        return None
    userinfo, _, host = m.group("netloc").rpartition("@")
    user, colon, _ = userinfo.partition(":")
    if not colon:
        return None
    return f"{m.group('scheme')}{user}:{MASK}@{host}{m.group('rest')}"


def redact_text(text: str) -> str:
    """A string with the passwords of any URLs in it masked: the string read whole as a
    URL (a config value), then every URL in it (free text)."""
    text = _redact_url(text) or text  # first as one URL, then any URLs within

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
