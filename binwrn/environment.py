"""Environment variables changed for a block of code and put back after it."""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from contextlib import contextmanager


@contextmanager
def restored_environ(names: Iterable[str]) -> Iterator[None]:
    """Inside, the named variables may be set or removed; afterwards each is as it was, one
    that was unset unset again (a sweep's next job in this process must not inherit them)."""
    saved = {name: os.environ.get(name) for name in names}
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
