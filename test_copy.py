"""The copy-paste path: bridge.py and estimators.py work, typed, wherever a user puts the two files.

Each test copies the two files, unchanged, into a fresh directory (at its top level, or into a package
``myproj.vendor`` with its ``__init__.py`` files) and runs a user's script there in a fresh interpreter,
so nothing from this checkout can stand in for the copies.
"""

from __future__ import annotations

import os
import pathlib
import shutil
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).parent
PLACEMENTS = pytest.mark.parametrize("package", ["", "myproj.vendor"], ids=["top_level", "in_a_package"])

# A user's script: fit both estimators, predict, pickle the classifier. Typed, so mypy checks it too.
USER_FIT = """\
from __future__ import annotations

import pickle
import sys
import warnings

import numpy as np

from {prefix}bridge import to_numpy, to_tensor
from {prefix}estimators import TorchClassifier, TorchRegressor

warnings.simplefilter("error")
warnings.filterwarnings("ignore", "training stopped before it converged")  # a few epochs on purpose

X = np.random.default_rng(0).normal(size=(40, 3)).astype(np.float32)
y = np.array(["a", "b"])[(X[:, 0] > 0).astype(int)]
clf = TorchClassifier(hidden_layer_sizes=(4,), max_iter=3, random_state=0).fit(X, y)
assert set(clf.predict(X).tolist()) <= {{"a", "b"}}
assert to_numpy(to_tensor(clf.predict_proba(X))).shape == (40, 2)
reg = TorchRegressor(hidden_layer_sizes=(4,), max_iter=3, random_state=0).fit(X, X[:, 0])
assert reg.predict(X).shape == (40,)
with open(sys.argv[1], "wb") as f:
    pickle.dump((clf, clf.predict_proba(X), X), f)

# Every module came from the copies, and estimators uses its sibling bridge, not some other one.
estimators, bridge = sys.modules["{prefix}estimators"], sys.modules["{prefix}bridge"]
assert type(clf).__module__ == "{prefix}estimators"
assert estimators.to_numpy is bridge.to_numpy
print(estimators.__file__, bridge.__file__)
print("top-level:", *sorted({{"bridge", "estimators"}} & set(sys.modules)))
"""

# Another user's script, in a fresh interpreter: the pickle restores the same fitted model.
USER_LOAD = """\
from __future__ import annotations

import pickle
import sys

import numpy as np

from {prefix}estimators import TorchClassifier

with open(sys.argv[1], "rb") as f:
    clf, proba, X = pickle.load(f)
assert isinstance(clf, TorchClassifier)
assert np.array_equal(clf.predict_proba(X), proba)
"""

# What mypy must infer through the copies: real types, not Any.
USER_TYPES = """\
from __future__ import annotations

from typing import reveal_type

import numpy as np
import numpy.typing as npt
import torch

from {prefix}bridge import to_tensor
from {prefix}estimators import TorchClassifier


def train(X: npt.NDArray[np.float64], y: npt.NDArray[np.int64]) -> TorchClassifier:
    return TorchClassifier(max_iter=2).fit(X, y)


def scores(clf: TorchClassifier, X: npt.NDArray[np.float64]) -> torch.Tensor:
    return to_tensor(clf.predict_proba(X))


reveal_type(train(np.zeros((4, 2)), np.arange(4) % 2).predict(np.zeros((1, 2))))
"""


def place(root: pathlib.Path, package: str) -> str:
    """Copy the two files into ``root`` or into ``root/<package path>``; return the import prefix."""
    where = root
    for part in package.split(".") if package else []:
        where = where / part
        where.mkdir()
        (where / "__init__.py").write_text("")
    for name in ("bridge.py", "estimators.py"):
        shutil.copy(ROOT / name, where / name)
    return f"{package}." if package else ""


def run_python(root: pathlib.Path, script: str, *args: str) -> str:
    """Run ``script`` from ``root`` in a fresh interpreter that sees no PYTHONPATH."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    done = subprocess.run(
        [sys.executable, script, *args], cwd=root, env=env, capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


@PLACEMENTS
def test_copies_fit_predict_and_unpickle_where_the_user_puts_them(
    tmp_path: pathlib.Path, package: str
) -> None:
    prefix = place(tmp_path, package)
    (tmp_path / "fit.py").write_text(USER_FIT.format(prefix=prefix))
    (tmp_path / "load.py").write_text(USER_LOAD.format(prefix=prefix))
    out = run_python(tmp_path, "fit.py", "model.pkl")
    # The modules came from the copies, not from this checkout (which pip -e also puts on the path).
    expected = tmp_path.joinpath(*package.split(".")) if package else tmp_path
    files, top_level = out.splitlines()
    assert files.split() == [str(expected / "estimators.py"), str(expected / "bridge.py")]
    # Inside a package, nothing is imported as a top-level bridge or estimators.
    assert top_level.split() == (["top-level:"] if package else ["top-level:", "bridge", "estimators"])
    run_python(tmp_path, "load.py", "model.pkl")


@pytest.fixture(scope="module")
def mypy_cache(tmp_path_factory: pytest.TempPathFactory) -> pathlib.Path:
    """One cache for both placements: mypy then analyses torch, numpy and scikit-learn once."""
    return tmp_path_factory.mktemp("mypy_cache")


@PLACEMENTS
def test_copies_type_check_strictly_in_a_user_project(
    tmp_path: pathlib.Path, package: str, mypy_cache: pathlib.Path
) -> None:
    """mypy --strict, with a config of the user's that says nothing about the copies."""
    pytest.importorskip("mypy")
    prefix = place(tmp_path, package)
    for name, text in {"fit.py": USER_FIT, "load.py": USER_LOAD, "types_.py": USER_TYPES}.items():
        (tmp_path / name).write_text(text.format(prefix=prefix))
    (tmp_path / "mypy.ini").write_text("[mypy]\n")
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "mypy",
            "--strict",
            "--config-file",
            "mypy.ini",
            "--cache-dir",
            str(mypy_cache),
        ]
        + ["fit.py", "load.py", "types_.py"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    # The estimators' types came through the copies: the prediction is an ndarray or a tensor, not Any.
    # An array of any shape: ndarray[tuple[Any, ...], ...] in NumPy 2's stubs, ndarray[Any, ...] in 1.26's.
    revealed = 'Revealed type is "numpy.ndarray[{}, numpy.dtype[Any]] | torch._tensor.Tensor"'
    assert any(revealed.format(shape) in done.stdout for shape in ("tuple[Any, ...]", "Any")), done.stdout
