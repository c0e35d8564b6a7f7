"""Test-session setup: SciPy's array API switch, and skips for what the oldest declared versions lack.

SciPy reads SCIPY_ARRAY_API once, at import, so it is set before anything imports it; scikit-learn's
array API checks (tensor in, tensor out) run only with it (README, "Tensors in, tensors out").

CI runs the suite twice (.ci/run): on the newest versions, and on the oldest that pyproject.toml
declares. A test that needs a newer library says so itself (``pytest.importorskip(name,
minversion=...)`` or a ``skipif``); ``NEEDS_NEWER`` below does it for tests whose files say nothing.
"""

from __future__ import annotations

import os
import re
from importlib.metadata import PackageNotFoundError, version

import pytest

os.environ.setdefault("SCIPY_ARRAY_API", "1")

_PIPELINE = (
    "StandardScaler under array API dispatch passes NumPy dtypes to torch.asarray, which torch refuses"
)
_CLASSES = "the older check wants classes_ in the input's namespace; ours stays NumPy by design"
# (regex searched in the test's id and the document block it runs, distribution, first good version, why)
NEEDS_NEWER: list[tuple[str, str, str, str]] = [
    (r"TorchClassifier\(.*-check_array_api_input", "scikit-learn", "1.9", _CLASSES),
    # test_checklist.py's row 21 runs all of check_estimator, that check included
    (r"test_each_check_passes_on_ours\[row21-.*-TorchClassifier\]", "scikit-learn", "1.9", _CLASSES),
    ("test_a_tensor_pipeline_stays_in_torch_under_dispatch", "scikit-learn", "1.8", _PIPELINE),
    (r"sklearn\.config_context\(array_api_dispatch=True\)", "scikit-learn", "1.8", _PIPELINE),
    (
        "test_pandas_frames_and_series_convert_without_a_writable_alias",
        "pandas",
        "3.0",
        "before copy-on-write a frame's memory is writable, so rule 2 lets to_tensor share it",
    ),
]


def _release(text: str) -> tuple[int, ...]:
    """The release numbers a version starts with: ``"2.13.0+cpu"`` -> ``(2, 13, 0)``."""
    match = re.match(r"\d+(\.\d+)*", text)
    return tuple(int(n) for n in match.group().split(".")) if match else ()


def _installed(distribution: str) -> str | None:
    """The installed version of ``distribution``, or None: then the tests that need it skip themselves
    (``pytest.importorskip``), and without the test extra, collection must not fail on it."""
    try:
        return version(distribution)
    except PackageNotFoundError:
        return None


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Skip, with the reason, each test that ``NEEDS_NEWER`` names when the installed version is older."""
    for item in items:
        callspec = getattr(item, "callspec", None)
        where = item.nodeid + str(callspec.params.get("block", "")) if callspec else item.nodeid
        for pattern, distribution, first, why in NEEDS_NEWER:
            found = _installed(distribution)
            if found is not None and re.search(pattern, where) and _release(found) < _release(first):
                reason = f"needs {distribution}>={first}, found {found}: {why}"
                item.add_marker(pytest.mark.skip(reason=reason))
