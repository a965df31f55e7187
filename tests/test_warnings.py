"""pyproject.toml's filterwarnings, as the suite runs under them: a deprecation raised from
binwrn's own code fails its test; the third-party warnings named there are silenced, and only
those."""

from __future__ import annotations

import warnings

import pytest

WARN = compile("import warnings\nwarnings.warn(MESSAGE, CATEGORY)", "<module>", "exec")


def _warn_from(module: str, message: str, category: type[Warning]) -> None:
    """Warn as code of `module` does (the warnings filter matches the caller's __name__)."""
    exec(WARN, {"__name__": module, "MESSAGE": message, "CATEGORY": category})


@pytest.mark.parametrize("category", [DeprecationWarning, PendingDeprecationWarning,
                                      FutureWarning])
@pytest.mark.parametrize("module", ["binwrn", "binwrn.data.imagenet_transforms"])
def test_a_deprecation_from_binwrn_code_is_an_error(module, category):
    with pytest.raises(category, match="old API"):
        _warn_from(module, "old API", category)


def test_the_same_deprecation_from_a_library_stays_a_warning():
    with pytest.warns(DeprecationWarning, match="old API"):
        _warn_from("somelibrary.module", "old API", DeprecationWarning)


@pytest.mark.parametrize(("message", "category"), [
    ("`isinstance(treespec, LeafSpec)` is deprecated, use `isinstance(treespec, TreeSpec) "
     "and treespec.is_leaf()` instead.", FutureWarning),
    ("This process (pid=123) is multi-threaded, use of fork() may lead to deadlocks in the "
     "child.", DeprecationWarning),
    ("You're resuming from a checkpoint that ended before the epoch ended and your "
     "dataloader is not resumable.", UserWarning),
    ("The ``noload`` loader strategy is deprecated and will be removed in a future release.",
     DeprecationWarning),
])
def test_the_named_third_party_warnings_are_silenced(message, category):
    with warnings.catch_warnings(record=True) as caught:
        warnings.filterwarnings("always", message="old API")  # the list stays in force
        _warn_from("lightning.pytorch.utilities._pytree", message, category)
    assert caught == []
