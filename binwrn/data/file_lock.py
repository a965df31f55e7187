"""One builder per machine for what every process of a job would otherwise build at once.

Under DDP every rank loads the data itself; the first start on a machine decodes an
ImageFolder tree into its uint8 cache (or downloads, or extracts ImageNet's tarballs). Inside
`exclusive(lock file)` one process does it while the others of that machine wait, then find
it done and read it. Where a file system has no locks (some network mounts) the lock is
skipped: the atomic renames still keep every file whole, only the work may be done twice.
"""

from __future__ import annotations

import errno
import fcntl
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

_NO_LOCKS = (errno.ENOLCK, errno.EOPNOTSUPP, errno.EINVAL, errno.ENOSYS)


@contextmanager
def exclusive(path: Path) -> Iterator[None]:
    """Hold an exclusive lock on `path` (created if missing) while the block runs."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX)
        except OSError as err:
            if err.errno not in _NO_LOCKS:
                raise
            yield
            return
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
