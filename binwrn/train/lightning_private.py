"""The private Lightning names binwrn builds on, imported here and nowhere else.

Lightning promises nothing about names with a leading underscore, and binwrn needs six:
train/ddp.py subclasses DDP's subprocess launcher and its watcher thread to start the other
ranks from a plan file, and overrides `DDPStrategy._configure_launcher` to install that
launcher; train/cluster.py opens the process group with the helpers Lightning's own
DDPStrategy uses, so that Lightning finds it open. A Lightning release that moves or renames
one of them fails here, at import, with one sentence naming the versions binwrn is tested
with, instead of deep inside a DDP run; tests/test_lightning_private.py checks their shapes
(bases, signatures, the members the subclasses override) and that no other module imports a
private Lightning name.
"""

from __future__ import annotations

from binwrn.errors import BinwrnError
from binwrn.train.lean_imports import import_lightning

TESTED = ">=2.6,<2.7"  # pyproject.toml's lightning pin, which CI installs
# The members of the private classes (and of DDPStrategy) that train/ddp.py overrides or calls.
MEMBERS = {
    "_ChildProcessObserver": ("_run",),
    "_SubprocessScriptLauncher": ("launch", "kill", "_call_children_scripts",
                                  "_check_can_spawn_children"),
    "DDPStrategy": ("_configure_launcher",),
}


def _unsupported(problem: str) -> BinwrnError:
    import lightning

    return BinwrnError(f"Lightning {lightning.__version__} {problem}, which binwrn's DDP "
                       f"builds on: install lightning{TESTED}, the versions binwrn is tested "
                       "with (binwrn/train/lightning_private.py lists what it needs).")


import_lightning()  # first, so that these imports load Lightning without torchmetrics' extras
try:
    from lightning.fabric.strategies.launchers.subprocess_script import _ChildProcessObserver
    from lightning.fabric.utilities.distributed import (
        _get_default_process_group_backend_for_device,
        _init_dist_connection,
        _set_num_threads_if_needed,
    )
    from lightning.pytorch.strategies import DDPStrategy
    from lightning.pytorch.strategies.launchers.subprocess_script import (
        _SubprocessScriptLauncher,
    )
except ImportError as err:
    raise _unsupported(f"has moved or renamed a private name ({err})") from None



def _check_members() -> None:
    for cls in (_ChildProcessObserver, _SubprocessScriptLauncher, DDPStrategy):
        missing = [m for m in MEMBERS[cls.__name__] if not callable(getattr(cls, m, None))]
        if missing:
            raise _unsupported(f"has no {cls.__name__}.{', '.join(missing)}")


_check_members()

__all__ = ["TESTED", "_ChildProcessObserver", "_SubprocessScriptLauncher",
           "_get_default_process_group_backend_for_device", "_init_dist_connection",
           "_set_num_threads_if_needed"]
