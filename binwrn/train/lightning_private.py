"""The private Lightning names binwrn builds on, imported here and nowhere else.

Lightning promises nothing about names with a leading underscore, and binwrn needs three:
train/cluster.py opens the process group with the helpers Lightning's own DDPStrategy uses
(backend, connection, threads per process), so that Lightning finds it open. A Lightning
release that moves or renames one of them fails here, at import, with one sentence naming
the versions binwrn is tested with, instead of deep inside a DDP run;
tests/test_lightning_private.py checks their signatures and that no other module imports a
private Lightning name.
"""

from __future__ import annotations

from binwrn.errors import BinwrnError
from binwrn.train.lean_imports import import_lightning

TESTED = ">=2.6,<2.7"  # pyproject.toml's lightning pin, which CI installs


def _unsupported(problem: str) -> BinwrnError:
    import lightning

    return BinwrnError(f"Lightning {lightning.__version__} {problem}, which binwrn's DDP "
                       f"builds on: install lightning{TESTED}, the versions binwrn is tested "
                       "with (binwrn/train/lightning_private.py lists what it needs).")


import_lightning()  # first, so that these imports load Lightning without torchmetrics' extras
try:
    from lightning.fabric.utilities.distributed import (
        _get_default_process_group_backend_for_device,
        _init_dist_connection,
        _set_num_threads_if_needed,
    )
except ImportError as err:
    raise _unsupported(f"has moved or renamed a private name ({err})") from None

__all__ = ["TESTED", "_get_default_process_group_backend_for_device", "_init_dist_connection",
           "_set_num_threads_if_needed"]
