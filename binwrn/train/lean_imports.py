"""Import Lightning without the parts of torchmetrics binwrn never uses.

Lightning imports torchmetrics, whose image, detection, audio and plotting modules import
torchvision.models, scipy.signal and matplotlib.pyplot at import time when those are
installed (docs/benchmarks.md has the profile). binwrn uses no torchmetrics metric that
needs them, so while Lightning loads, torchmetrics' availability checks (lightning_utilities'
`package_available` and `RequirementCache`) answer no for them. binwrn's own uses (ImageNet
decoding and downloads with torchvision, figures with matplotlib) import them directly and
are unaffected. torch._dynamo, which torchvision also imports, still loads: Lightning's
`lightning.fabric.wrappers` imports it itself.
"""

from __future__ import annotations

import sys

HIDDEN = ("torchvision", "scipy", "matplotlib")
_loading = False  # True while import_lightning imports Lightning


def _hidden(name: str | None) -> bool:
    base = (name or "").split(".")[0]
    for mark in "<>=!~[ ":
        base = base.split(mark)[0]
    return _loading and base in HIDDEN


def import_lightning() -> None:
    """`import lightning.pytorch` with HIDDEN reported missing to its import-time checks."""
    global _loading
    if "lightning.pytorch" in sys.modules:
        return
    try:
        from lightning_utilities.core import imports
    except ImportError:
        imports = None
    if imports is None or "torchmetrics" in sys.modules:  # nothing left to leave out
        import lightning.pytorch  # noqa: F401
        return
    package_available, check_available = (imports.package_available,
                                          imports.RequirementCache._check_available)

    def lean_package_available(name: str) -> bool:
        return False if _hidden(name) else package_available(name)

    def lean_check_available(cache) -> None:
        if _hidden(cache.requirement or cache.module) and not hasattr(cache, "available"):
            cache.available, cache.message = False, "left out by binwrn at start-up"
            return
        check_available(cache)

    # torchmetrics binds package_available when it loads: the lean one, which answers as the
    # original once _loading is over.
    imports.package_available = lean_package_available
    imports.RequirementCache._check_available = lean_check_available
    _loading = True
    try:
        import lightning.pytorch  # noqa: F401
    finally:
        _loading = False
        imports.package_available = package_available
        imports.RequirementCache._check_available = check_available
