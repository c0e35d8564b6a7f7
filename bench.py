"""Speed and memory of TorchClassifier next to the alternatives, in one run: ``python bench.py``.

Every contender trains the same network (one hidden layer of 64 ReLU units, Adam, learning rate 1e-3,
the same batch size and 20 epochs; 200 on iris, whose 120 training rows are one batch) on the same
data. Reported: fit time, test accuracy, predict latency for 1 row and 10,000 rows (medians over
repeats) with ratios to each alternative and to a bare forward pass, where a training step's time goes,
and the peak memory of fit and predict on a 1,000,000 x 50 float32 matrix as a multiple of its size.
A second case is shaped like TF-IDF text: a CSR matrix of 20,000 x 50,000 with about 40 non-zeros per
row and one hidden layer of 100, fit and predict on 10,000 rows next to MLPClassifier, and the peak
memory predict adds as a multiple of the CSR matrix's own bytes (data, indices, indptr).
``--quick`` runs a small version (CI runs it as a smoke test). skorch is measured when installed.
Nothing global is changed: thread counts and the default dtype stay as the caller set them.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import ctypes
import json
import platform
import resource
import statistics
import subprocess
import sys
import time
import warnings
from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import scipy.optimize
import sklearn
import torch
from scipy import sparse
from sklearn.datasets import load_digits, load_iris, make_classification, make_moons
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import GridSearchCV, train_test_split
from sklearn.neural_network import MLPClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler, normalize
from sklearn.utils.validation import validate_data
from threadpoolctl import threadpool_limits
from torch import nn

import estimators
from estimators import TorchClassifier

HIDDEN, LR, SEED = 64, 1e-3, 0
# Seconds of rest before each timed fit: after a matrix product, OpenBLAS's worker threads (MLP's) spin
# for a while, and on a 2-core machine they take the cores torch's threads need for the next fit.
PAUSE = 0.5


class HandLoop:
    """The tutorial's hand-written loop, done carefully: tensors converted once, randperm slices."""

    def __init__(self, batch_size: int, epochs: int) -> None:
        self.batch_size, self.epochs = batch_size, epochs

    def fit(self, X: np.ndarray[Any, Any], y: np.ndarray[Any, Any]) -> HandLoop:
        X_t, y_t = torch.from_numpy(X), torch.from_numpy(y).long()
        self.model = nn.Sequential(
            nn.Linear(X.shape[1], HIDDEN), nn.ReLU(), nn.Linear(HIDDEN, int(y.max()) + 1)
        )
        optimizer = torch.optim.Adam(self.model.parameters(), lr=LR)
        for _ in range(self.epochs):
            order = torch.randperm(len(X_t))
            for start in range(0, len(X_t), self.batch_size):
                rows = order[start : start + self.batch_size]
                loss = nn.functional.cross_entropy(self.model(X_t[rows]), y_t[rows])
                optimizer.zero_grad()
                torch.autograd.backward(loss)
                optimizer.step()
        self.model.eval()
        return self

    def predict(self, X: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
        with torch.inference_mode():
            labels: np.ndarray[Any, Any] = self.model(torch.from_numpy(X)).argmax(1).numpy()
        return labels


class SkorchNet(nn.Module):
    def __init__(self, n_in: int, n_out: int) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Linear(n_in, HIDDEN), nn.ReLU(), nn.Linear(HIDDEN, n_out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.body(x)
        return out


def contenders(batch_size: int, epochs: int, n_in: int, n_out: int) -> dict[str, Callable[[], Any]]:
    common: dict[str, Any] = {
        "hidden_layer_sizes": (HIDDEN,),
        "learning_rate_init": LR,
        "batch_size": batch_size,
        "max_iter": epochs,
        "tol": 0.0,
        "n_iter_no_change": epochs + 1,
        "random_state": SEED,
    }
    found: dict[str, Callable[[], Any]] = {
        "TorchClassifier": lambda: TorchClassifier(**common),
        "hand loop": lambda: HandLoop(batch_size, epochs),
        "MLPClassifier": lambda: MLPClassifier(**common),
    }
    try:
        from skorch import NeuralNetClassifier
    except ImportError:
        return found

    def skorch_net() -> Any:
        return NeuralNetClassifier(
            SkorchNet,
            module__n_in=n_in,
            module__n_out=n_out,
            criterion=nn.CrossEntropyLoss,
            optimizer=torch.optim.Adam,
            lr=LR,
            max_epochs=epochs,
            batch_size=batch_size,
            train_split=None,
            verbose=0,
            iterator_train__shuffle=True,
        )

    found["skorch"] = skorch_net
    return found


def median_seconds(fn: Callable[[], Any], repeats: int) -> float:
    return interleaved_medians([fn], repeats)[0]


def interleaved_medians(fns: Sequence[Callable[[], Any]], repeats: int) -> list[float]:
    """Median seconds of each of ``fns``, timed in turn ``repeats`` times: figures that are compared
    with each other see the same moments of a noisy machine."""
    times: list[list[float]] = [[] for _ in fns]
    for _ in range(repeats):
        for fn, found in zip(fns, times, strict=True):
            start = time.perf_counter()
            fn()
            found.append(time.perf_counter() - start)
    return [statistics.median(found) for found in times]


def speed(
    name: str, X: Any, y: Any, batch_size: int, epochs: int, repeats: int
) -> dict[str, dict[str, float]]:
    X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.2, random_state=SEED, stratify=y)
    scaler = StandardScaler().fit(X_train)
    X_train, X_test = (
        scaler.transform(X_train).astype(np.float32),
        scaler.transform(X_test).astype(np.float32),
    )
    y_train = y_train.astype(np.int64)
    batch_size = min(batch_size, len(X_train))  # MLP warns when it has to clip it
    big = np.resize(X_test, (10_000, X.shape[1]))
    models = {
        label: make() for label, make in contenders(batch_size, epochs, X.shape[1], int(y.max()) + 1).items()
    }
    fit_times: dict[str, list[float]] = {label: [] for label in models}
    for model in models.values():
        model.fit(X_train[:256], y_train[:256])  # warm-up: imports and first-call costs are not the subject
    for _ in range(repeats):  # round robin, so that drift in a noisy machine's speed hits all alike
        for label, model in models.items():
            time.sleep(PAUSE)
            fit_times[label].append(median_seconds(partial(model.fit, X_train, y_train), 1))
    results = {}
    for label, model in models.items():
        time.sleep(PAUSE)
        fit = statistics.median(fit_times[label])
        accuracy = float((model.predict(X_test) == y_test).mean())
        one = median_seconds(partial(model.predict, X_test[:1]), 200) * 1e6
        many = median_seconds(partial(model.predict, big), 20) * 1e3
        steps = epochs * -(-len(X_train) // batch_size)
        results[label] = {
            "fit s": fit,
            "us/step": fit / steps * 1e6,
            "accuracy": accuracy,
            "predict 1 row us": one,
            "predict 10k rows ms": many,
        }
        print(
            f"  {name} batch {batch_size} {label:<16} fit {fit:6.2f}s ({fit / steps * 1e6:5.0f} us/step) "
            f"acc {accuracy:.3f}  1 row {one:6.0f} us  10k rows {many:6.1f} ms",
            flush=True,
        )
    ours = models["TorchClassifier"]
    time.sleep(PAUSE)
    predict_against_bare_forward(ours, big)
    step_breakdown(ours, X_train, y_train, batch_size, results["TorchClassifier"]["us/step"])
    return results


def bare_forward(model: TorchClassifier, X: np.ndarray[Any, Any]) -> Callable[[], None]:
    """predict's floor: the fitted module on ``X`` as a tensor already made, under inference mode."""
    X_t = torch.from_numpy(X)

    def forward() -> None:
        with torch.inference_mode():
            model.module_(X_t)

    return forward


def predict_against_bare_forward(model: TorchClassifier, X: np.ndarray[Any, Any]) -> None:
    """predict next to its floor (bare_forward), timed in turn."""
    ours, bare = interleaved_medians([partial(model.predict, X), bare_forward(model, X)], 50)
    print(
        f"    TorchClassifier predict {len(X)} rows {ours * 1e3:.2f} ms, bare forward pass "
        f"{bare * 1e3:.2f} ms: {ours / bare:.2f}x"
    )


def step_breakdown(
    model: TorchClassifier, X: np.ndarray[Any, Any], y: np.ndarray[Any, Any], batch_size: int, step_us: float
) -> None:
    """Where a training step's time goes, measured in loops shaped like training: a part timed alone in
    a tight loop runs faster than between the others, whose code and data it shares the caches with.
    Bare torch loops over shuffled batches of a copy of the fitted network: the forward pass with its
    loss; that and backward; those and the estimator's own optimizer step; and, for comparison, those
    with torch.optim.Adam's step instead. Their differences give each part's time, and what fit spends
    per step beyond the third loop is ours (batching, the L2 term, the epoch's bookkeeping)."""
    module = copy.deepcopy(model.module_).train()
    ours = model._make_optimizer(module, torch.device("cpu"), resume=False)  # fit's: functional Adam
    assert ours is not None
    torch_adam = torch.optim.Adam(module.parameters(), lr=LR, fused=True)
    X_t, y_t = torch.from_numpy(X), torch.from_numpy(y)
    order = torch.randperm(len(X_t), generator=torch.Generator().manual_seed(SEED))
    batches = [order[start : start + batch_size] for start in range(0, len(X_t), batch_size)]

    def loop(parts: int, step: Callable[[], Any] = ours.step) -> None:
        for rows in batches:
            loss = nn.functional.cross_entropy(module(X_t[rows]), y_t[rows], reduction="sum") / len(rows)
            if parts > 1:
                module.zero_grad()
                torch.autograd.backward(loss)
            if parts > 2:
                step()

    loops = [partial(loop, 1), partial(loop, 2), partial(loop, 3), partial(loop, 3, torch_adam.step)]
    passes = max(5, 500 // len(batches))  # medians over a few hundred steps at least
    work = batch_size * sum(p.numel() for p in module.parameters())
    with estimators._threads_for(work):  # the threads fit's steps run on
        bare = [s / len(batches) * 1e6 for s in interleaved_medians(loops, passes)]
    times = {"forward": bare[0], "backward": bare[1] - bare[0], "optimizer": bare[2] - bare[1]}
    times["(torch.optim.Adam's step instead)"] = bare[3] - bare[1]
    times["ours"] = step_us - bare[2]
    cells = ", ".join(f"{part} {us:.0f} us" for part, us in times.items())
    print(f"    TorchClassifier step of {step_us:.0f} us: {cells}")


def ratios(results: dict[str, dict[str, float]]) -> None:
    ours = results["TorchClassifier"]
    for label, theirs in results.items():
        if label != "TorchClassifier":
            cells = ", ".join(
                f"{k} {ours[k] / theirs[k]:.2f}x"
                for k in ("fit s", "predict 1 row us", "predict 10k rows ms")
            )
            print(f"    TorchClassifier / {label}: {cells}")


def memory_probe(which: str, rows: int) -> None:
    """Run in a fresh process: peak resident memory added by fit or predict, over X's size."""
    rng = np.random.default_rng(SEED)
    X = rng.standard_normal((rows, 50), dtype=np.float32)
    y = (X[:, :5].argmax(1)).astype(np.int64)
    X.flags.writeable = "read-only" not in which  # what joblib hands each fit of a parallel search
    model = (TorchClassifier if which.startswith("torch") else MLPClassifier)(
        hidden_layer_sizes=(HIDDEN,), max_iter=1, batch_size=200, random_state=SEED
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model.fit(X[:2000], y[:2000])  # warm-up in the baseline: imports, allocator pools
        model.predict_proba(X[:5000])
        baseline = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        if which.endswith("fit"):
            model.fit(X, y)
        else:
            model.predict_proba(X)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    print(json.dumps({"ratio": (peak - baseline) / X.nbytes}))


def memory(rows: int) -> dict[str, float]:
    out = {}
    for which in ("torch fit", "torch fit read-only", "torch predict", "mlp fit", "mlp predict"):
        done = subprocess.run(
            [sys.executable, __file__, "--memory-probe", which, "--rows", str(rows)],
            capture_output=True,
            text=True,
            check=True,
        )
        out[which] = json.loads(done.stdout.strip().splitlines()[-1])["ratio"]
        print(f"  peak memory added by {which:<19} {out[which]:.2f}x X's size", flush=True)
    return out


def tfidf_like(rows: int, cols: int, per_row: int = 40) -> tuple[sparse.csr_matrix, np.ndarray[Any, Any]]:
    """A float32 CSR matrix shaped like TF-IDF text and 5-class labels that depend on it.

    Column frequencies follow Zipf's law (a few common words, many rare ones), rows have unit norm.
    """
    rng = np.random.default_rng(SEED)
    zipf = 1.0 / np.arange(1, cols + 1)
    columns = rng.choice(cols, size=(rows, per_row), p=zipf / zipf.sum())
    values = rng.random((rows, per_row), dtype=np.float32)
    row_of = np.repeat(np.arange(rows), per_row)
    coo = sparse.coo_matrix((values.ravel(), (row_of, columns.ravel())), shape=(rows, cols))
    X = normalize(coo.tocsr())  # tocsr sums a word repeated in a row, as counts do
    y = np.asarray(X @ rng.standard_normal((cols, 5)).astype(np.float32)).argmax(1)
    return X, y


def csr_bytes(X: sparse.csr_matrix) -> int:
    return int(X.data.nbytes + X.indices.nbytes + X.indptr.nbytes)


def sparse_models(epochs: int) -> dict[str, Callable[[], Any]]:
    common: dict[str, Any] = {
        "hidden_layer_sizes": (100,),
        "batch_size": 200,
        "max_iter": epochs,
        "tol": 0.0,
        "n_iter_no_change": epochs + 1,
        "random_state": SEED,
    }
    return {
        "TorchClassifier": lambda: TorchClassifier(**common),
        "MLPClassifier": lambda: MLPClassifier(**common),
    }


def tfidf_speed(rows: int, cols: int, epochs: int, repeats: int, test_rows: int = 10_000) -> None:
    """Fit on ``rows`` rows and predict ``test_rows`` more, TorchClassifier next to MLPClassifier."""
    X, y = tfidf_like(rows + test_rows, cols)
    X_train, y_train, X_test, y_test = X[:rows], y[:rows], X[rows:], y[rows:]
    models = {label: make() for label, make in sparse_models(epochs).items()}
    fit_times: dict[str, list[float]] = {label: [] for label in models}
    for _ in range(repeats):  # round robin, as in speed()
        for label, model in models.items():
            time.sleep(PAUSE)
            fit_times[label].append(median_seconds(partial(model.fit, X_train, y_train), 1))
    results = {}
    for label, model in models.items():
        fit, many = statistics.median(fit_times[label]), median_seconds(partial(model.predict, X_test), 3)
        accuracy = float((model.predict(X_test) == y_test).mean())
        results[label] = (fit, many)
        print(
            f"  tf-idf {rows} x {cols} {label:<16} fit {fit:6.2f}s  acc {accuracy:.3f}  "
            f"predict {test_rows} rows {many * 1e3:7.1f} ms",
            flush=True,
        )
    (fit, many), (mlp_fit, mlp_many) = results["TorchClassifier"], results["MLPClassifier"]
    print(f"    TorchClassifier / MLPClassifier: fit {fit / mlp_fit:.2f}x, predict {many / mlp_many:.2f}x")


def resident_bytes(field: str) -> int:
    """VmRSS or VmHWM (peak since the last reset) of this process, from Linux's /proc."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    raise RuntimeError(f"{field} not in /proc/self/status")


def sparse_memory_probe(which: str, cols: int, test_rows: int) -> None:
    """Run in a fresh process: peak memory added by predict_proba on TF-IDF rows, over their CSR bytes."""
    X, y = tfidf_like(2000 + test_rows, cols)
    model = sparse_models(1)["TorchClassifier" if which.startswith("torch") else "MLPClassifier"]()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model.fit(X[:2000], y[:2000])
    X_test = X[2000:]
    model.predict_proba(X_test[:500])  # warm-up: first-call costs are not the subject
    # Hand freed heap memory back (glibc), so buffers that fit or the warm-up left in malloc's pools
    # cannot hide what predict allocates; then writing 5 to clear_refs resets the peak (VmHWM) to the
    # current size (ru_maxrss never goes down).
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    with open("/proc/self/clear_refs", "w") as clear:
        clear.write("5")
    baseline = resident_bytes("VmRSS")
    model.predict_proba(X_test)
    print(json.dumps({"ratio": (resident_bytes("VmHWM") - baseline) / csr_bytes(X_test)}))


def sparse_memory(cols: int, test_rows: int, processes: int) -> None:
    """The probe in several fresh processes: where the heap places each chunk's buffers changes from
    one process to the next (address layout), and with it how many new pages predict touches."""
    if not Path("/proc/self/clear_refs").exists():
        print("  peak memory of sparse predict: needs Linux's /proc, skipped")
        return
    size = ["--cols", str(cols), "--rows", str(test_rows)]
    for which in ("torch sparse predict", "mlp sparse predict"):
        found = []
        for _ in range(processes):
            done = subprocess.run(
                [sys.executable, __file__, "--memory-probe", which, *size],
                capture_output=True,
                text=True,
                check=True,
            )
            found.append(json.loads(done.stdout.strip().splitlines()[-1])["ratio"])
        print(
            f"  peak memory added by {which:<20} {statistics.median(found):.2f}x the CSR matrix's bytes "
            f"(median of {processes} processes, {min(found):.2f}x to {max(found):.2f}x)",
            flush=True,
        )


@contextlib.contextmanager
def busy_cores(n: int) -> Any:
    """``n`` processes that keep a core busy each (a browser, an IDE, a CI neighbour), killed on exit."""
    spinners = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(n)]
    try:
        time.sleep(0.5)  # let the scheduler spread them
        yield
    finally:
        for spinner in spinners:
            spinner.kill()
            spinner.wait()


def fit_ratio(X: Any, y: Any, params: dict[str, Any], repeats: int, before: Callable[[], Any]) -> float:
    """Median over round-robin repeats of TorchClassifier's fit time over MLPClassifier's, each fit
    right after ``before()`` (a rest, or NumPy work)."""

    def timed(make: Callable[[], Any]) -> Callable[[], None]:
        def run() -> None:
            before()
            start = time.perf_counter()
            make().fit(X, y)
            times.setdefault(make, []).append(time.perf_counter() - start)

        return run

    times: dict[Callable[[], Any], list[float]] = {}
    ours, mlp = partial(TorchClassifier, **params), partial(MLPClassifier, **params)
    interleaved_medians([timed(ours), timed(mlp)], repeats)
    return statistics.median(times[ours]) / statistics.median(times[mlp])


def busy_machine(repeats: int, quick: bool) -> None:
    """Fit / MLP on a quiet machine after a rest (the figures above), straight after NumPy work (as in a
    Pipeline, where a scaler or PCA runs just before: OpenBLAS's threads then spin on the cores), and
    with one busy process per core, where every thread of torch's team waits for a core."""
    X_iris, y_iris = load_iris(return_X_y=True)
    X_digits, y_digits = load_digits(return_X_y=True)
    cases = {
        "iris, 200 epochs": (X_iris, y_iris, {"max_iter": 20 if quick else 200}),
        "digits, batch 32": (X_digits, y_digits, {"batch_size": 32, "max_iter": 2 if quick else 10}),
        "digits, batch 200": (X_digits, y_digits, {"batch_size": 200, "max_iter": 2 if quick else 10}),
    }
    rest = partial(time.sleep, PAUSE)

    def numpy_work() -> None:
        data = X_digits.T @ X_digits  # a BLAS product, as a scaler's or PCA's
        data.sum()

    for name, (X, y, extra) in cases.items():
        X = StandardScaler().fit_transform(X)
        params: dict[str, Any] = {"hidden_layer_sizes": (HIDDEN,), "random_state": SEED, "tol": 0.0, **extra}
        params["n_iter_no_change"] = params["max_iter"] + 1
        quiet = fit_ratio(X, y, params, repeats, rest)
        after_numpy = fit_ratio(X, y, params, repeats, numpy_work)
        with busy_cores(torch.get_num_threads()):
            busy = fit_ratio(X, y, params, repeats, lambda: None)
            with thread_line(0):  # torch's threads for every step
                all_threads = fit_ratio(X, y, params, repeats, lambda: None)
        print(
            f"  {name:<18} fit / MLP: quiet {quiet:.2f}x, straight after NumPy work {after_numpy:.2f}x, "
            f"{torch.get_num_threads()} busy processes {busy:.2f}x ({busy / quiet:.2f}x the quiet ratio; "
            f"{all_threads:.2f}x on all {torch.get_num_threads()} threads)",
            flush=True,
        )


def paired_ratio(ours: Callable[[], Any], theirs: Callable[[], Any], rounds: int, calls: int) -> float:
    """Median over ``rounds`` of the time of ``calls`` calls of ``ours`` over as many of ``theirs``, the
    two run back to back with no rest, as a service runs them: each pair sees the same moment of a noisy
    machine."""
    found = []
    for _ in range(rounds):
        start = time.perf_counter()
        for _ in range(calls):
            ours()
        middle = time.perf_counter()
        for _ in range(calls):
            theirs()
        found.append((middle - start) / (time.perf_counter() - middle))
    return statistics.median(found)


def serving(rounds: int) -> None:
    """predict as a service calls it, with no rest between calls: 1 row next to MLPClassifier's and next
    to its floor (scikit-learn's input validation, then the bare forward pass and softmax, which no
    wrapper can undercut), and 10,000 rows next to MLP's, on a quiet machine and beside one busy
    process per core."""
    X, y = load_digits(return_X_y=True)
    X = StandardScaler().fit_transform(X)
    params: dict[str, Any] = {"hidden_layer_sizes": (HIDDEN,), "random_state": SEED, "max_iter": 20}
    ours, mlp = TorchClassifier(**params).fit(X, y), MLPClassifier(**params).fit(X, y)
    one, big = X[:1], np.resize(X, (10_000, X.shape[1]))

    def floor() -> None:
        valid = validate_data(ours, one, reset=False, accept_sparse="csr", dtype=(np.float64, np.float32))
        with torch.inference_mode():
            ours.module_(torch.from_numpy(valid)).softmax(1).numpy()

    cases = {
        "predict_proba, 1 row": (partial(ours.predict_proba, one), partial(mlp.predict_proba, one), 50),
        "predict, 1 row": (partial(ours.predict, one), partial(mlp.predict, one), 50),
        "predict_proba, 10,000 rows": (partial(ours.predict_proba, big), partial(mlp.predict_proba, big), 2),
    }
    quiet = {name: paired_ratio(a, b, rounds, calls) for name, (a, b, calls) in cases.items()}
    floor_ratio = paired_ratio(floor, partial(mlp.predict_proba, one), rounds, 50)
    over_bare = paired_ratio(partial(ours.predict, big), bare_forward(ours, big), rounds, 2)
    with busy_cores(torch.get_num_threads()):
        busy = {name: paired_ratio(a, b, rounds, calls) for name, (a, b, calls) in cases.items()}
    for name in cases:
        print(
            f"  {name:<27} / MLP: quiet {quiet[name]:.2f}x, {torch.get_num_threads()} busy processes "
            f"{busy[name]:.2f}x ({busy[name] / quiet[name]:.2f}x the quiet ratio)",
            flush=True,
        )
    print(f"  the floor of predict_proba, 1 row / MLP: {floor_ratio:.2f}x (validation + bare forward pass)")
    print(f"  predict, 10,000 rows / the bare forward pass on a ready tensor: {over_bare:.2f}x")


@contextlib.contextmanager
def thread_line(line: float) -> Any:
    """Fit's line between one thread and torch's (estimators._PARALLEL_STEP) moved, for a measurement:
    0 gives every step torch's threads, infinity gives every step one."""
    chosen = estimators._PARALLEL_STEP
    estimators._PARALLEL_STEP = line  # type: ignore[assignment]  # a float, as the bench needs
    try:
        yield
    finally:
        estimators._PARALLEL_STEP = chosen


def thread_choice(repeats: int, quick: bool) -> None:
    """Where intra-op threads start to pay off on a quiet machine: fit time on one thread over fit time
    on all, for ever wider layers (batch 200, 256 features), and which one fit chooses (one thread below
    estimators._PARALLEL_STEP multiply-adds a step)."""
    rng = np.random.default_rng(SEED)
    X = rng.standard_normal((2_000, 256), dtype=np.float32)
    y = (X[:, :5].argmax(1)).astype(np.int64)
    for width in (64, 512) if quick else (64, 128, 256, 1024, 4096):
        params: dict[str, Any] = {
            "hidden_layer_sizes": (width,),
            "batch_size": 200,
            "max_iter": 1 if quick else 3,
        }
        work = 200 * (256 * width + width + width * 5 + 5)  # rows x parameters

        def fit_with(line: float, params: dict[str, Any] = params) -> None:
            with thread_line(line):
                TorchClassifier(**params, random_state=SEED).fit(X, y)

        one, every = interleaved_medians([partial(fit_with, np.inf), partial(fit_with, 0)], repeats)
        pick = "one" if work < estimators._PARALLEL_STEP else "all"
        print(
            f"  hidden {width:>5}: {work / 1e6:7.1f} M multiply-adds a step, one thread / all "
            f"{torch.get_num_threads()}: {one / every:.2f}x; fit uses {pick}",
            flush=True,
        )


def grid_search_speedup(quick: bool) -> None:
    """GridSearchCV over 8 small fits (4 candidates, 2 folds) with n_jobs=2 against n_jobs=1, for ours
    and MLP, in one run: the first search of each starts joblib's worker processes (which import torch,
    or scikit-learn's MLP), the second reuses them."""
    from joblib.externals.loky import get_reusable_executor

    X, y = load_digits(return_X_y=True)
    X = StandardScaler().fit_transform(X)
    grid = {"alpha": [1e-4, 1e-2], "learning_rate_init": [1e-3, 1e-2]}
    params: dict[str, Any] = {
        "hidden_layer_sizes": (HIDDEN,),
        "max_iter": 3 if quick else 20,
        "random_state": SEED,
    }
    for label, make in (("TorchClassifier", TorchClassifier), ("MLPClassifier", MLPClassifier)):
        get_reusable_executor().shutdown(wait=True)  # cold workers for each, in turn
        found = {}
        for key, n_jobs in (("cold 2", 2), ("warm 2", 2), ("1", 1), ("warm 2 again", 2)):
            start = time.perf_counter()
            GridSearchCV(make(**params), grid, cv=2, n_jobs=n_jobs).fit(X, y)
            found[key] = time.perf_counter() - start
        warm = min(found["warm 2"], found["warm 2 again"])
        print(
            f"  GridSearchCV, 8 fits, {label:<16} n_jobs=1 {found['1']:.2f}s, n_jobs=2 {warm:.2f}s "
            f"(speed-up {found['1'] / warm:.2f}x); with cold workers {found['cold 2']:.2f}s "
            f"({found['1'] / found['cold 2']:.2f}x)",
            flush=True,
        )


class _Spent(Exception):
    """The hand-written L-BFGS has made the evaluations it was given."""


def torch_lbfgs(X: Any, y: Any, evaluations: int) -> int:
    """The floor under any L-BFGS on autograd: SciPy's L-BFGS-B on the loss and gradient of a bare
    torch network (MLP's shape, float64), nothing else (no L2 term, no clipping, no checks), its
    parameters and gradients views of two flat vectors as in fit (estimators._flat_parameters), on one
    thread as fit runs small steps (on torch's team, MLP's spinning OpenBLAS threads slow it several
    times over). Stops after ``evaluations`` evaluations, or sooner where SciPy does; returns how many
    it made."""
    X_t, y_t = torch.from_numpy(X), torch.from_numpy(y)
    with torch.random.fork_rng():  # the initial weights, drawn without touching the caller's stream
        torch.manual_seed(SEED)
        net = nn.Sequential(nn.Linear(X.shape[1], 100), nn.ReLU(), nn.Linear(100, int(y.max()) + 1))
    params: list[torch.Tensor] = list(net.double().parameters())
    made = 0

    def loss_and_gradient(x: np.ndarray[Any, Any]) -> tuple[float, np.ndarray[Any, Any]]:
        nonlocal made
        if made == evaluations:
            raise _Spent
        made += 1
        point[...] = x
        gradient.zero_()
        loss = nn.functional.cross_entropy(net(X_t), y_t, reduction="sum")
        torch.autograd.backward(loss)
        return float(loss.detach()), slope.copy()

    options = {"maxfun": 10**9, "maxiter": 10**9, "gtol": 0.0, "ftol": 0.0}
    with (
        estimators._flat_parameters(params) as (flat, gradient),
        threadpool_limits(limits=1, user_api="openmp"),
        contextlib.suppress(_Spent),
    ):
        point, slope = flat.numpy(), gradient.numpy()
        scipy.optimize.minimize(loss_and_gradient, point.copy(), method="L-BFGS-B", jac=True, options=options)
    return made


def lbfgs_speed(repeats: int, quick: bool) -> None:
    """L-BFGS fits on small data over MLP's (MLP's default network): to convergence (max_iter=200; the
    same initial weights, so the same evaluations up to rounding), and at a fixed budget of evaluations
    (max_fun and tol=0: SciPy stops both after max_fun + 1), next to a hand-written torch L-BFGS
    (torch_lbfgs) given as many: what autograd alone costs, per evaluation."""
    cases: dict[str, Any] = {"iris": load_iris(return_X_y=True)}
    for n in (100, 1000):
        cases[f"moons {n}"] = make_moons(n, noise=0.2, random_state=SEED)
    budget = 10 if quick else 100
    converge: dict[str, Any] = {"solver": "lbfgs", "max_iter": 20 if quick else 200, "random_state": SEED}
    fixed = {**converge, "max_iter": 10**6, "max_fun": budget, "tol": 0.0}
    for name, (X, y) in cases.items():
        X = StandardScaler().fit_transform(X)
        made = torch_lbfgs(X, y, budget + 1)  # fewer where SciPy stops sooner: timed per evaluation
        ours, mlp, ours_fixed, mlp_fixed, bare = interleaved_medians(
            [
                partial(TorchClassifier(**converge).fit, X, y),
                partial(MLPClassifier(**converge).fit, X, y),
                partial(TorchClassifier(**fixed).fit, X, y),
                partial(MLPClassifier(**fixed).fit, X, y),
                partial(torch_lbfgs, X, y, budget + 1),
            ],
            repeats,
        )
        bare *= (budget + 1) / made
        print(
            f"  lbfgs {name:<10} fit ours {ours:.3f}s, MLP {mlp:.3f}s: {ours / mlp:.2f}x; {budget} "
            f"evaluations: ours / MLP {ours_fixed / mlp_fixed:.2f}x, hand-written torch / MLP "
            f"{bare / mlp_fixed:.2f}x ({made} evaluations, scaled to {budget + 1})",
            flush=True,
        )


def read_only_cost(repeats: int, quick: bool) -> None:
    """A read-only X (joblib's memmaps in a parallel search) is read a batch at a time, each batch
    copied: fit time on it over fit time on the same X writable, which is read in place."""
    rng = np.random.default_rng(SEED)
    X = rng.standard_normal((20_000 if quick else 200_000, 50), dtype=np.float32)
    y = (X[:, :5].argmax(1)).astype(np.int64)
    frozen = X.copy()
    frozen.flags.writeable = False
    model = TorchClassifier(hidden_layer_sizes=(HIDDEN,), max_iter=1, random_state=SEED)
    writable, read_only = interleaved_medians(
        [partial(model.fit, X, y), partial(model.fit, frozen, y)], repeats
    )
    print(
        f"  fit on read-only X / writable X: {read_only / writable:.2f}x ({len(X)} x 50 float32)", flush=True
    )


def onnx_predict(repeats: int, epochs: int) -> None:
    """predict of one fitted Pipeline (StandardScaler, then the network of the tables above, on digits)
    three ways, timed in turn with no rest between calls: ours, MLP's (the same Pipeline with
    MLPClassifier), and onnxruntime running our Pipeline's ONNX export (docs/deployment.md)."""
    try:
        import onnxruntime
        import skl2onnx

        import onnx_export
    except ImportError as err:
        print(
            f"onnxruntime predict: skipped, the onnx extra is not installed ({err}): pip install -e '.[onnx]'"
        )
        return
    onnx_export.register()
    X, y = load_digits(return_X_y=True)
    X = X.astype(np.float32)
    X_train, X_test, y_train, _ = train_test_split(X, y, test_size=0.2, random_state=SEED, stratify=y)
    params: dict[str, Any] = {
        "hidden_layer_sizes": (HIDDEN,),
        "learning_rate_init": LR,
        "max_iter": epochs,
        "random_state": SEED,
    }
    ours = make_pipeline(StandardScaler(), TorchClassifier(**params)).fit(X_train, y_train)
    mlp = make_pipeline(StandardScaler(), MLPClassifier(**params)).fit(X_train, y_train)
    onx = skl2onnx.to_onnx(ours, X_train[:1], options={TorchClassifier: {"zipmap": False}})
    # onnxruntime's threads spin after each run by default, taking the cores the next contender's call
    # needs (ours on 10,000 rows: 147 ms beside spinning threads, 107 without, on a busy 2-core
    # machine): without spinning, calls timed in turn see the machine alike.
    options = onnxruntime.SessionOptions()
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    session = onnxruntime.InferenceSession(
        onx.SerializeToString(), options, providers=["CPUExecutionProvider"]
    )
    big = np.resize(X_test, (10_000, X.shape[1]))
    assert (session.run(["label"], {"X": big})[0] == ours.predict(big)).all()
    version = onnxruntime.__version__
    network = f"StandardScaler + {HIDDEN} ReLU units"
    print(f"onnxruntime {version} (its default threads, not spinning), digits: {network}")
    for rows, n in ((X_test[:1], 10 * repeats), (big, repeats)):
        fns = [
            partial(ours.predict, rows),
            partial(mlp.predict, rows),
            partial(session.run, ["label"], {"X": rows}),
        ]
        for fn in fns:
            fn()  # first-call costs are not the subject
        t_ours, t_mlp, t_onnx = interleaved_medians(fns, n)
        unit, scale = ("us", 1e6) if len(rows) == 1 else ("ms", 1e3)
        print(
            f"  predict {len(rows)} rows: ours {t_ours * scale:.1f} {unit}, "
            f"MLP {t_mlp * scale:.1f} {unit}, "
            f"onnxruntime {t_onnx * scale:.1f} {unit}; ours / onnxruntime {t_ours / t_onnx:.2f}x, "
            f"MLP / onnxruntime {t_mlp / t_onnx:.2f}x",
            flush=True,
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a small, fast version (a smoke test)")
    parser.add_argument("--memory-probe", help=argparse.SUPPRESS)
    parser.add_argument("--rows", type=int, default=1_000_000, help="rows of the memory test's matrix")
    parser.add_argument("--cols", type=int, default=50_000, help="columns of the TF-IDF case")
    parser.add_argument("--onnx-only", action="store_true", help="only onnxruntime's predict beside ours")
    parser.add_argument("--serving-only", action="store_true", help="only predict as a service calls it")
    args = parser.parse_args()
    if args.memory_probe and "sparse" in args.memory_probe:
        return sparse_memory_probe(args.memory_probe, args.cols, args.rows)
    if args.memory_probe:
        return memory_probe(args.memory_probe, args.rows)
    epochs, repeats = (2, 1) if args.quick else (20, 5)
    if args.serving_only:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            return serving(3 if args.quick else 31)
    if args.onnx_only:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            return onnx_predict(2 if args.quick else 20, epochs)
    if args.quick:  # a smoke test times nothing worth resting for
        global PAUSE
        PAUSE = 0.0
    print(
        f"python {platform.python_version()}, torch {torch.__version__}, numpy {np.__version__}, "
        f"scikit-learn {sklearn.__version__}, {torch.get_num_threads()} torch threads, {platform.machine()}"
    )
    X_iris, y_iris = load_iris(return_X_y=True)
    X_digits, y_digits = load_digits(return_X_y=True)
    X_synth, y_synth = make_classification(
        n_samples=2_000 if args.quick else 20_000,
        n_features=40,
        n_informative=20,
        n_classes=5,
        random_state=SEED,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        # iris: small data, the whole training set as one batch. Fits of iris and digits take about
        # 0.05-0.2 s: three times the repeats, so that a burst of load on a shared machine moves their
        # medians less.
        ratios(speed("iris", X_iris, y_iris, 200, epochs * 10, 3 * repeats))
        for name, X, y, n in (
            ("digits", X_digits, y_digits, 3 * repeats),
            ("synthetic", X_synth, y_synth, repeats),
        ):
            for batch_size in (32, 200):
                ratios(speed(name, X, y, batch_size, epochs, n))
    memory(20_000 if args.quick else args.rows)
    # the TF-IDF case: --quick shrinks the matrix, not the shape of the work
    cols, test_rows = (5_000, 1_000) if args.quick else (args.cols, 10_000)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        tfidf_speed(2_000 if args.quick else 20_000, cols, *((1, 1) if args.quick else (5, 3)), test_rows)
    sparse_memory(cols, test_rows, 1 if args.quick else 5)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        read_only_cost(1 if args.quick else 5, args.quick)
        lbfgs_speed(1 if args.quick else 7, args.quick)
        thread_choice(1 if args.quick else 5, args.quick)
        busy_machine(1 if args.quick else 7, args.quick)
        serving(3 if args.quick else 31)
        grid_search_speedup(args.quick)
        onnx_predict(2 if args.quick else 20, epochs)


if __name__ == "__main__":
    main()
