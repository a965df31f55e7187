"""MD5 checks of official data files, made before a file is parsed.

A published MD5 (the same tables torchvision checks) proves a file is the official one, so
a truncated, altered or foreign file is refused before any parser (an unpickler, a MATLAB
reader) sees its bytes. Files a user wrote themselves skip the check with
`data.verify_checksums=false`.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from binwrn.errors import DataError


def md5_of(path: Path) -> str:
    digest = hashlib.md5(usedforsecurity=False)
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def check_md5(path: Path, official: str) -> None:
    """Refuse `path` unless its MD5 is `official`, in one sentence that says what to do."""
    found = md5_of(path)
    if found != official:
        raise DataError(
            f"{path} has MD5 {found}, not the official {official} (truncated or altered): "
            "replace it with the official file, or set data.verify_checksums=false for files "
            "you made yourself."
        )
