"""The documentation's code runs: every Python block of docs/ and the README.

Each page's blocks run in order in one namespace, so a recipe that drifts
from the API fails here. The user guide's pages take up where its quick
start leaves off: they start from the motorcycle data ``X, y``, the
estimator class and a fitted ``est``. Blocks that need a GPU (CuPy) run
only where CuPy finds one.
"""

import re
import textwrap
import warnings
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
RST_BLOCK = re.compile(r"^\.\. code-block:: python\n\n((?:(?: {3}.*)?\n)+)", re.MULTILINE)
MARKDOWN_BLOCK = re.compile(r"^```python\n(.*?)^```", re.MULTILINE | re.DOTALL)


def python_blocks(path):
    text = path.read_text(encoding="utf-8")
    if path.suffix == ".md":
        return MARKDOWN_BLOCK.findall(text)
    return [textwrap.dedent(block) for block in RST_BLOCK.findall(text)]


def has_gpu():
    try:
        from mixexp._backend import resolve_backend

        resolve_backend("cupy")
    except (ImportError, RuntimeError):
        return False
    return True


PAGES = [path for path in [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.rst"))]
         if "_build" not in path.parts and "generated" not in path.parts
         and "auto_examples" not in path.parts and python_blocks(path)]


def test_the_pages_with_recipes_are_found():
    names = {path.name for path in PAGES}
    assert {"README.md", "model_selection.rst", "index.rst"} <= names


@pytest.mark.parametrize("path", PAGES, ids=lambda path: str(path.relative_to(ROOT)))
def test_documented_code_runs(path, tmp_path, monkeypatch):
    matplotlib = pytest.importorskip("matplotlib")
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from mixexp import MixtureOfExpertsRegressor
    from mixexp.datasets import load_motorcycle

    monkeypatch.chdir(tmp_path)  # recipes that save files write them here
    X, y = load_motorcycle(return_X_y=True)
    namespace = {"X": X, "y": y, "MixtureOfExpertsRegressor": MixtureOfExpertsRegressor,
                 "est": MixtureOfExpertsRegressor(n_experts=3, random_state=0).fit(X, y)}
    gpu = None
    try:
        for index, block in enumerate(python_blocks(path)):
            if "cupy" in block:
                gpu = has_gpu() if gpu is None else gpu
                if not gpu:
                    continue
            code = compile(block, f"{path.name}, Python block {index + 1}", "exec")
            # any warning is an error: a search whose scorer fails only warns (and
            # scores NaN), which is how the old recipe failed inside a Pipeline
            with warnings.catch_warnings():
                warnings.simplefilter("error")
                exec(code, namespace)
    finally:
        plt.close("all")
