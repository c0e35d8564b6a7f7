"""Beyond one machine: grid searches on a dask.distributed cluster, partial_fit over dask.array blocks.

Every test runs on a real ``distributed.LocalCluster`` that this module starts once and stops at its
end: 2 worker processes with one thread each, on this machine, listening on loopback only. The workers
get ``bridge.py`` and ``estimators.py`` the way docs/cluster.md tells users who copied the files
(``Client.upload_file``), and this module too, since tasks refer to its helpers. The module skips where
dask or distributed is not installed (``pip install -e '.[cluster]'``; the test extra alone does not
install them); the ``partial_fit`` test also needs dask-ml. See docs/cluster.md.

The cluster examples of docs/cluster.md are fenced ``py``, not ``python``: test_demo.py runs every
``python`` block with no scheduler to connect to, so these run here instead, against the LocalCluster.
"""

from __future__ import annotations

import contextlib
import os
import pathlib
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import joblib
import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits, load_iris
from sklearn.model_selection import GridSearchCV, StratifiedKFold
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from torch import nn

import estimators
from estimators import TorchClassifier

da = pytest.importorskip("dask.array")
distributed = pytest.importorskip("distributed")

HERE = pathlib.Path(__file__).parent
# Deliberately short fits (max_iter=20): ConvergenceWarning is expected and says nothing here.
pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")


@pytest.fixture(scope="module")
def client() -> Iterator[Any]:
    """A client of a 2-process LocalCluster whose workers run the uploaded copies of our files."""
    with (
        distributed.LocalCluster(
            n_workers=2,
            threads_per_worker=1,
            processes=True,
            host="127.0.0.1",
            dashboard_address="127.0.0.1:0",
        ) as cluster,
        distributed.Client(cluster) as client,
    ):
        # load=False: the files are only written; a worker imports them when a task first needs them.
        # The default (load=True) also imports them on the scheduler, which a LocalCluster runs in this
        # process: that reloads `estimators` here and makes its classes unpicklable.
        for name in ("bridge.py", "estimators.py", pathlib.Path(__file__).name):
            client.upload_file(str(HERE / name), load=False)
        yield client


def _search(module: Any = None, cv: Any = 3) -> GridSearchCV:
    """A small search whose candidates score differently, so a mix-up of results shows."""
    size = {"hidden_layer_sizes": (8,)} if module is None else {"module": module}  # a module sizes itself
    pipe = make_pipeline(StandardScaler(), TorchClassifier(**size, max_iter=20, random_state=0))
    grid = {"torchclassifier__alpha": [1e-4, 1e-1], "torchclassifier__learning_rate_init": [1e-3, 1e-2]}
    return GridSearchCV(pipe, grid, cv=cv, error_score="raise")


def _assert_same_search(got: GridSearchCV, want: GridSearchCV) -> None:
    scores = [key for key in want.cv_results_ if "test_score" in key]  # per split, mean, std, rank
    assert scores and sorted(scores) == sorted(key for key in got.cv_results_ if "test_score" in key)
    for key in scores:
        np.testing.assert_array_equal(got.cv_results_[key], want.cv_results_[key], err_msg=key)
    assert got.best_params_ == want.best_params_


def _uploaded_estimators_file(dask_worker: Any) -> bool:
    """Whether this worker imported ``estimators`` from the copy uploaded into its local directory."""
    return pathlib.Path(estimators.__file__).parent == pathlib.Path(dask_worker.local_directory)


def test_workers_run_the_uploaded_copies(client: Any) -> None:
    assert client.run(_uploaded_estimators_file) == dict.fromkeys(client.nthreads(), True)
    assert estimators.TorchClassifier is TorchClassifier  # this process's module was not reloaded


def test_torch_on_a_worker_uses_the_worker_thread_budget(client: Any) -> None:
    """One torch thread per worker process of one thread: 2 fits at a time use 2 cores, not 2 x cores.

    distributed's nanny sets OMP_NUM_THREADS=1 before it starts a worker, and torch sizes its pool
    from it; this process's own thread count is untouched.
    """
    before = torch.get_num_threads()
    threads = {
        address: client.submit(torch.get_num_threads, workers=[address], pure=False).result()
        for address in client.nthreads()
    }
    assert client.nthreads() == {address: 1 for address in threads} and len(threads) == 2
    assert threads == {address: 1 for address in threads}
    assert torch.get_num_threads() == before


def test_grid_search_on_the_cluster_equals_n_jobs_1(client: Any) -> None:
    X, y = load_iris(return_X_y=True)
    want = _search().set_params(n_jobs=1).fit(X, y)
    # n_jobs=None: the backend decides, here every thread of the cluster.
    with joblib.parallel_backend("dask"):
        got = _search().fit(X, y)
    _assert_same_search(got, want)


def test_partial_fit_over_dask_blocks_equals_partial_fit_in_memory(client: Any) -> None:
    wrappers = pytest.importorskip("dask_ml.wrappers")
    X, y = load_iris(return_X_y=True)
    order = np.random.default_rng(0).permutation(len(X))  # iris is sorted by class; blocks should mix
    X, y = X[order].astype(np.float32), y[order]
    X_d, y_d = da.from_array(X, chunks=(40, -1)), da.from_array(y, chunks=40)  # blocks of 40, 40, 40, 30
    want = TorchClassifier(hidden_layer_sizes=(8,), random_state=0)
    for start in range(0, len(X), 40):
        want.partial_fit(X[start : start + 40], y[start : start + 40], classes=[0, 1, 2])
    # shuffle_blocks=False: blocks in order, as in the loop above (the default draws an order).
    model = wrappers.Incremental(
        TorchClassifier(hidden_layer_sizes=(8,), random_state=0), shuffle_blocks=False
    )
    model.fit(X_d, y_d, classes=[0, 1, 2])
    got = model.estimator_
    assert got.t_ == want.t_ == len(X) and got.loss_curve_ == want.loss_curve_ and len(got.loss_curve_) == 4
    for (name, a), b in zip(
        got.module_.state_dict().items(), want.module_.state_dict().values(), strict=True
    ):
        assert torch.equal(a, b), name
    proba = model.predict_proba(X_d)  # lazy: computed block by block on the workers
    assert isinstance(proba, da.Array)
    np.testing.assert_array_equal(proba.compute(), want.predict_proba(X))


class _KillWorkerOnce:
    """A module factory whose first call in a worker process kills that process (SIGKILL), once per token.

    Never kills the process that created it (the test itself). The killed worker's pid is written to the
    token file, which exists from then on, so every later call builds the network.
    """

    def __init__(self, token: pathlib.Path) -> None:
        self.token, self.spare = token, os.getpid()

    def __call__(self, n_features: int, n_outputs: int) -> nn.Module:
        if os.getpid() != self.spare:
            with contextlib.suppress(FileExistsError), self.token.open("x") as claimed:
                claimed.write(str(os.getpid()))
                claimed.flush()
                os.kill(os.getpid(), signal.SIGKILL)
        return nn.Sequential(nn.Linear(n_features, 8), nn.ReLU(), nn.Linear(8, n_outputs))


@contextlib.contextmanager
def _replicas_kept(client: Any) -> Iterator[None]:
    """The cluster with distributed's Active Memory Manager stopped, as docs/cluster.md's search has it:
    every 2 s the manager drops the copies of data that no queued task needs, scatter's copies too."""
    client.amm.stop()
    try:
        yield
    finally:
        client.amm.start()  # the fixture's cluster runs it, as distributed does by default


def test_a_worker_killed_mid_search_changes_no_score(client: Any, tmp_path: pathlib.Path) -> None:
    """The fit running on the killed worker is run again elsewhere; the search ends with the same scores.

    joblib sends every argument over 1 kB to one worker only, unless it is listed in ``scatter``, which
    puts a copy on every worker. Here that is X, y and every split's indices (digits: about 9 kB of
    train indices per split), so no data live on one worker alone, as long as the Active Memory Manager
    is stopped. Otherwise the search fails with FutureCancelledError ("already forgotten") when the
    dead worker held the last copy of any of them, which depends on where they were placed and on when
    the manager last ran (see docs/cluster.md).
    """
    X, y = load_digits(return_X_y=True)
    splits = list(StratifiedKFold(n_splits=3).split(X, y))
    module = _KillWorkerOnce(tmp_path / "killed")
    short = {"estimator__torchclassifier__max_iter": 5}  # digits are larger than iris: keep fits short
    want = _search(module, cv=splits).set_params(n_jobs=1, **short).fit(X, y)  # here: nothing is killed
    assert not module.token.exists()
    before = set(client.run(os.getpid).values())
    every_array = [X, y, *(indices for split in splits for indices in split)]
    with _replicas_kept(client), joblib.parallel_backend("dask", scatter=every_array):
        got = _search(module, cv=splits).set_params(**short).fit(X, y)
    killed = int(module.token.read_text())
    assert killed in before and killed not in client.run(os.getpid).values()
    _assert_same_search(got, want)
    # The nanny starts a fresh worker in its place, and it gets the uploaded files too. The timeout is a
    # guard against hanging, not a speed limit: a restart takes seconds.
    client.wait_for_workers(2, timeout=120)
    assert client.run(_uploaded_estimators_file) == dict.fromkeys(client.nthreads(), True)


def test_docs_cluster_examples_run_against_a_local_cluster(
    client: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    page = HERE.joinpath("docs", "cluster.md").read_text()
    blocks = re.findall(r"```py\n(.*?)```", page, re.S)
    assert len(blocks) == 2 and "tcp://scheduler-host:8786" in blocks[0]
    monkeypatch.chdir(HERE)  # the page uploads bridge.py and estimators.py from the current directory
    pytest.importorskip("dask_ml")
    namespace: dict[str, Any] = {"__name__": "readme"}
    try:
        for block in blocks:
            code = block.replace("tcp://scheduler-host:8786", client.scheduler.address)
            exec(compile(code, "docs/cluster.md", "exec"), namespace)
    finally:
        if "client" in namespace:  # the page's own client; closing it makes the fixture's the default again
            namespace["client"].amm.start()  # the page stops the cluster's Active Memory Manager
            namespace["client"].close()
    # Three passes over every row: partial_fit of Incremental continues, it does not start over.
    assert namespace["search"].best_params_ and namespace["model"].estimator_.t_ == 3 * len(namespace["X"])


def test_bridge_and_estimators_import_nothing_of_dask() -> None:
    """Dask is an optional extra: a fresh interpreter importing the two modules loads none of it."""
    code = "import sys, bridge, estimators; print(sorted(m for m in sys.modules if m.split('.')[0] in "
    code += "{'dask', 'distributed', 'dask_ml'}))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=HERE, check=True)
    assert done.stdout.strip() == "[]", done.stdout
