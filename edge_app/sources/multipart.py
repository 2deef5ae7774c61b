"""An incremental parser for multipart/x-mixed-replace (MJPG) streams with bounded memory.

It survives what cameras and networks do: garbage between parts, parts without
Content-Length, a wrong Content-Length (one too large is caught when the next boundary
arrives right after a whole JPEG, instead of swallowing the frames after it), an endless
part (dropped once it passes `max_part` bytes, then the parser resynchronises on the next
boundary), and a boundary missing from the Content-Type (taken from the first `--` line
of the body that a part's header follows, so a preamble is not mistaken for it).
"""

from __future__ import annotations

from typing import Dict, List, Optional

from edge_app.links.http_util import content_length

HEADER_LIMIT = 8192


class MultipartParser:
    def __init__(self, boundary: Optional[str], max_part: int = 4_000_000):
        self.marker = self._marker(boundary) if boundary else None
        self.max_part = max_part
        self.buf = bytearray()
        self.counts: Dict[str, int] = {"parts": 0, "garbage_bytes": 0, "oversize": 0,
                                       "bad_headers": 0, "bad_length": 0}
        self._skipping = False  # inside an oversize part: discard until the next boundary

    @staticmethod
    def _marker(boundary: str) -> bytes:
        b = boundary.strip().strip('"')
        return (b if b.startswith("--") else "--" + b).encode()

    def feed(self, data: bytes) -> List[bytes]:
        """Add bytes; return the complete parts (bodies) they finish."""
        self.buf += data
        parts: List[bytes] = []
        while True:
            part = self._next()
            if part is None:
                break
            parts.append(part)
        return parts

    def _find_marker(self) -> int:
        while self.marker is None:  # learn the boundary from the first "--" line of a part
            start = self.buf.find(b"--")
            end = self.buf.find(b"\n", start) if start >= 0 else -1
            if end < 0:
                self._trim_garbage()
                return -1
            nxt = self.buf.find(b"\n", end + 1)
            if nxt < 0 and len(self.buf) - end < HEADER_LIMIT:
                return -1  # the line after it has not arrived yet
            after = bytes(self.buf[end + 1:nxt if nxt >= 0 else None]).strip()
            if not after or b":" in after.split(b" ")[0]:  # a header line, or none
                self.marker = bytes(self.buf[start:end]).rstrip(b"\r")
            else:  # a preamble or garbage line, not a part's boundary
                self.counts["garbage_bytes"] += end + 1
                del self.buf[:end + 1]
        return self.buf.find(self.marker)

    def _trim_garbage(self) -> None:
        keep = len(self.marker) if self.marker else 2
        if len(self.buf) > keep:
            cut = len(self.buf) - keep
            if not self._skipping:
                self.counts["garbage_bytes"] += len(bytes(self.buf[:cut]).strip())
            del self.buf[:cut]

    def _next(self) -> Optional[bytes]:
        i = self._find_marker()
        if i < 0:
            if self.marker is not None:
                self._trim_garbage()
            return None
        if i > 0:
            skipped = bytes(self.buf[:i]).strip()
            if skipped and not self._skipping:
                self.counts["garbage_bytes"] += len(skipped)
            del self.buf[:i]
        self._skipping = False
        head_end = self.buf.find(b"\r\n\r\n")
        sep = 4
        if head_end < 0:
            head_end, sep = self.buf.find(b"\n\n"), 2
        if head_end < 0:
            if len(self.buf) > HEADER_LIMIT:  # no end of headers: not a part
                self.counts["bad_headers"] += 1
                del self.buf[:len(self.marker)]
            return None
        headers = self._headers(bytes(self.buf[len(self.marker):head_end]))
        body_start = head_end + sep
        length = headers.get("content-length")
        n = content_length(length)
        bad_length = length is not None and n is None  # then find the boundary instead
        if n is not None:
            if n > self.max_part:
                self._drop_oversize()
                return None
            if len(self.buf) < body_start + n:
                early = self._early_end(body_start, body_start + n)
                if early < 0:
                    return None
                body = bytes(self.buf[body_start:early]).rstrip(b"\r\n")
                del self.buf[:early]  # the declared length lied: the next part began
                self.counts["bad_length"] += 1
                self.counts["parts"] += 1
                return body
            body = bytes(self.buf[body_start:body_start + n])
            del self.buf[:body_start + n]
            self.counts["parts"] += 1
            return body
        nxt = self.buf.find(self.marker, body_start)
        if nxt < 0:
            if len(self.buf) - body_start > self.max_part:
                self._drop_oversize()
            return None
        body = bytes(self.buf[body_start:nxt]).rstrip(b"\r\n")
        del self.buf[:nxt]
        self.counts["bad_length"] += int(bad_length)
        if len(body) > self.max_part:
            self.counts["oversize"] += 1
            return self._next()
        self.counts["parts"] += 1
        return body

    def _early_end(self, start: int, declared_end: int) -> int:
        """Where the next boundary starts inside a part that has not reached its declared
        length, when what precedes it is a whole JPEG (the length lied); else -1."""
        nxt = self.buf.find(self.marker, start)
        if nxt < 0 or nxt >= declared_end:
            return -1
        return nxt if bytes(self.buf[start:nxt]).rstrip(b"\r\n").endswith(b"\xff\xd9") else -1

    def _drop_oversize(self) -> None:
        self.counts["oversize"] += 1
        self._skipping = True
        del self.buf[:len(self.marker)]  # step past this part's boundary and resynchronise

    @staticmethod
    def _headers(raw: bytes) -> Dict[str, str]:
        out = {}
        for line in raw.decode("latin-1").splitlines():
            if ":" in line:
                k, v = line.split(":", 1)
                out[k.strip().lower()] = v.strip()
        return out
