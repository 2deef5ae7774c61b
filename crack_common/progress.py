"""Progress bars for long jobs, on a terminal only: off when output goes to a file, a pipe,
the journal or CI (tqdm decides by whether stderr is a TTY), off with --quiet, and absent
where tqdm is not installed (the car needs no bars)."""

from __future__ import annotations

from typing import Any, Iterable, Optional


class _NoBar:
    def __init__(self, iterable: Optional[Iterable] = None, **_: Any):
        self.iterable = iterable
        self.n, self.total = 0, _.get("total")

    def __iter__(self):
        return iter(self.iterable or ())

    def update(self, n: int = 1) -> None:
        self.n += n

    def set_postfix(self, **_: Any) -> None:
        pass

    def refresh(self) -> None:
        pass

    def close(self) -> None:
        pass


def bar(iterable: Optional[Iterable] = None, *, enabled: bool = True, **kw: Any) -> Any:
    """A tqdm bar (total=, desc=, unit=, initial= as tqdm takes them), or a silent stand-in."""
    try:
        from tqdm import tqdm
    except ImportError:
        return _NoBar(iterable, **kw)
    return tqdm(iterable, disable=None if enabled else True, **kw)
