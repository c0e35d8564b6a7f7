"""demo.py's building blocks run small, every Python block of the README and docs/, and bench.py --quick.

Also what keeps the documents true: the README's test command is the one CI runs, every relative link
of the README and docs/ leads to a file (and a heading) that exists, and every code block is run.
"""

from __future__ import annotations

import ast
import pathlib
import re
import subprocess
import sys

import pytest
from sklearn.datasets import load_iris

import demo

HERE = pathlib.Path(__file__).parent
README = HERE.joinpath("README.md").read_text()
# The README, then the reference pages it links to, by name: {"README.md": text, "docs/gpu.md": text, ...}
DOCUMENTS = {
    path.relative_to(HERE).as_posix(): path.read_text()
    for path in [HERE / "README.md", *sorted(HERE.joinpath("docs").glob("*.md"))]
}
FENCE = re.compile(r"^```(\w*)\n(.*?)^```", re.S | re.M)
PYTHON_BLOCKS = [
    pytest.param(name, block, id=f"{name}:{number}")
    for name, text in DOCUMENTS.items()
    for number, (language, block) in enumerate(FENCE.findall(text), 1)
    if language == "python"
]


def test_classifier_and_regressor_tables(capsys: pytest.CaptureFixture[str]) -> None:
    demo.compare_classifiers(max_iter=3, datasets={"iris": load_iris})
    demo.compare_regressors(max_iter=3)
    out = capsys.readouterr().out
    assert "iris" in out and "TorchClassifier" in out and "Ridge" in out


def test_grid_search_reports_the_best_parameters() -> None:
    best = demo.grid_search(max_iter=3)
    assert set(best) == {"torchclassifier__hidden_layer_sizes", "torchclassifier__alpha"}


def test_custom_module_and_bridge_tour(capsys: pytest.CaptureFixture[str]) -> None:
    assert 0.0 <= demo.custom_module(max_iter=2) <= 1.0
    demo.bridge_tour()
    out = capsys.readouterr().out
    assert "shares memory: True (zero copy)" in out and "shares memory: False" in out


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
@pytest.mark.parametrize(("document", "block"), PYTHON_BLOCKS)
def test_python_blocks_of_readme_and_docs_run(document: str, block: str) -> None:
    """Every ``python`` block of the README and of docs/*.md, as written."""
    exec(compile(block, document, "exec"), {"__name__": "readme"})


# Pages whose ``py`` blocks need an optional extra and run in the test module that skips without it.
PY_BLOCKS_RUN_BY = {"docs/cluster.md": "test_cluster.py", "docs/deployment.md": "test_onnx_export.py"}


def test_every_code_block_is_run_or_a_shell_command() -> None:
    """``python`` blocks run above; ``py`` blocks need an extra (a dask cluster, the onnx packages) and
    run in the test module PY_BLOCKS_RUN_BY names, which skips without it, so only those pages have
    them; ``bash`` blocks are commands to type."""
    for name, text in DOCUMENTS.items():
        for language, _ in FENCE.findall(text):
            allowed = {"python", "bash"} | ({"py"} if name in PY_BLOCKS_RUN_BY else set())
            assert language in allowed, f"{name}: a ```{language} block that no test runs"
    assert len(PYTHON_BLOCKS) >= 8


def test_readme_quickstart_matches_ci() -> None:
    """The quickstart's last line is the test command, and .ci/run runs exactly that line."""
    ci = HERE.joinpath(".ci", "run").read_text()
    body = re.search(r"^readme_test_command\(\) \{.*?\n(.*?)^\}", ci, re.S | re.M)
    assert body is not None, "readme_test_command() not found in .ci/run"
    ci_lines = [line for line in body.group(1).splitlines() if line and not line.startswith("#")]
    quickstart = README.split("## Quickstart", 1)[1]
    command = re.findall(r"```bash\n(.*?)```", quickstart, re.S)[0].strip().splitlines()[-1]
    assert ci_lines == [command] == ["mypy && pytest"], "CI must run the README's test command verbatim"


def _anchor(heading: str) -> str:
    """GitHub's anchor of a heading: lower case, punctuation dropped, spaces to hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def test_every_relative_link_leads_to_a_file_and_heading_that_exist() -> None:
    headings = {
        name: {_anchor(h) for h in re.findall(r"^#+ (.*)$", FENCE.sub("", text), re.M)}
        for name, text in DOCUMENTS.items()
    }
    links = 0
    for name, text in DOCUMENTS.items():
        for target in re.findall(r"\]\(([^)\s]+)\)", FENCE.sub("", text)):
            if re.match(r"[a-z]+:", target):  # https:, mailto: ...: not ours to check
                continue
            path, _, anchor = target.partition("#")
            resolved = (HERE / name).parent.joinpath(path).resolve() if path else (HERE / name).resolve()
            assert resolved.exists(), f"{name}: the link {target} leads to no file"
            key = resolved.relative_to(HERE).as_posix()
            assert not anchor or anchor in headings.get(key, set()), f"{name}: no heading for {target}"
            links += 1
    assert links >= 20


def test_every_test_the_guide_names_exists() -> None:
    # The guide backs its promises with tests by name: a renamed or removed test must not leave a
    # promise pointing at nothing. (A name followed by * is a pattern, e.g. the laws test_*_casts_*.)
    modules = sorted(HERE.glob("test_*.py"))
    defined = {path.stem for path in modules} | {"test_mlp"}  # scikit-learn's test_mlp.py, which parity runs
    defined |= {
        node.name
        for path in modules
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.FunctionDef)
    }
    named = {
        (name, test)
        for name, text in DOCUMENTS.items()
        for test in re.findall(r"\b(test_\w+)\b(?!\*)", text)
        if not test.endswith("_")
    }
    assert len(named) >= 50
    assert not {(name, test) for name, test in named if test not in defined}


def test_quick_tour_runs_every_section() -> None:
    """``python demo.py --quick``, the quickstart's demo: all ten sections, in order. Never timed."""
    demo_py = HERE / "demo.py"
    done = subprocess.run(
        [sys.executable, str(demo_py), "--quick"], capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stderr
    assert re.findall(r"^(\d+)\. ", done.stdout, re.M) == [str(n) for n in range(1, 11)], done.stdout


def test_bench_quick_runs() -> None:
    """A smoke test only: speed is never asserted, the machines are noisy."""
    bench = pathlib.Path(__file__).with_name("bench.py")
    done = subprocess.run(
        [sys.executable, str(bench), "--quick"], capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stderr
    assert (
        "TorchClassifier / MLPClassifier" in done.stdout and "peak memory added by torch fit" in done.stdout
    )
    assert "tf-idf" in done.stdout and "torch sparse predict" in done.stdout


def test_polynomial_grid_searches_the_degree() -> None:
    best = demo.polynomial_grid(max_iter=3)
    assert set(best) == {"network", "logistic regression"}
    assert all(params["poly__degree"] in (1, 2) for params in best.values())


def test_pca_runs_on_numpy_and_on_tensors() -> None:
    numpy_accuracy, tensor_accuracy = demo.pca_numpy_and_tensors(max_iter=3)
    assert 0.0 <= numpy_accuracy <= 1.0 and 0.0 <= tensor_accuracy <= 1.0


def test_docstring_corpus_is_labelled_text() -> None:
    found = demo.docstrings("sklearn", limit=5)
    assert len(found) == 5 and len(set(found)) == 5 and all(len(text) >= 200 for text in found)


def test_text_classification_and_trees(capsys: pytest.CaptureFixture[str]) -> None:
    accuracy = demo.text_classification(max_iter=2, per_package=30)
    assert set(accuracy) == {"TorchClassifier", "MLPClassifier", "LogisticRegression"}
    demo.trees_on_a_table(max_iter=2)
    assert "HistGradientBoostingClassifier" in capsys.readouterr().out


def test_loss_curves_figure_is_saved(tmp_path: pathlib.Path) -> None:
    pytest.importorskip("matplotlib")
    path = tmp_path / "curves.png"
    assert demo.loss_curves_figure(path, max_iter=3) == path
    assert path.read_bytes().startswith(b"\x89PNG")


def test_loss_curves_without_matplotlib_say_how_to_get_it(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: pathlib.Path
) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)  # None in sys.modules: import fails
    assert demo.loss_curves_figure(tmp_path / "curves.png", max_iter=3) is None
    assert "pip install -e '.[plots]'" in capsys.readouterr().out
    assert not (tmp_path / "curves.png").exists()
