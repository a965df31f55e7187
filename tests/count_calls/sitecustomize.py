"""Counts, in a process started with this folder on PYTHONPATH, the calls that issue 28 holds
to one per `binwrn-run`: `MlflowClient` constructions, compositions of the run's config
(binwrn's own `hydra_compose` and the one Hydra's app runs the job with; Hydra's app also
composes once to probe the mode, inside hydra.main, which is not counted) and binwrn's
config checks.

Only counts: each wrapped call runs the real code unchanged, after appending its name to the
file $BINWRN_COUNT_CALLS names (tests/test_one_of_each.py reads it). Each module is wrapped
when it is first imported, so nothing is imported early.
"""

import importlib.abc
import importlib.util
import os
import sys

COUNTED = {  # module -> [(owner in it, or "" for the module, attribute, name in the file)]
    "mlflow.tracking.client": [("MlflowClient", "__init__", "client")],
    "hydra._internal.hydra": [("Hydra", "run", "composition")],
    "binwrn.configuration.compose": [("", "hydra_compose", "composition")],
    "binwrn.configuration.checks": [("", "check_config", "check")],
}


def _count(module, owner_name: str, attribute: str, name: str) -> None:
    owner = getattr(module, owner_name) if owner_name else module
    original = getattr(owner, attribute)

    def counted(*args, **kwargs):
        with open(os.environ["BINWRN_COUNT_CALLS"], "a") as out:
            out.write(f"{name}\n")
        return original(*args, **kwargs)

    setattr(owner, attribute, counted)


class _AfterImport(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name not in COUNTED or getattr(self, "_finding", False):
            return None
        self._finding = True
        try:
            spec = importlib.util.find_spec(name)
        finally:
            self._finding = False
        execute = spec.loader.exec_module

        def exec_module(module):
            execute(module)
            for counted in COUNTED[name]:
                _count(module, *counted)

        spec.loader.exec_module = exec_module
        return spec


if os.environ.get("BINWRN_COUNT_CALLS"):
    sys.meta_path.insert(0, _AfterImport())
