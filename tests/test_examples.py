"""The tabular-workflow notebook in examples/ runs from top to bottom, without warnings.

The gallery scripts (examples/plot_*.py) are run by the documentation build
(``sphinx-build -W``); the notebook is not part of the gallery, so it is run
here, in a fresh kernel, by nbclient (what nbmake uses underneath).
"""

from pathlib import Path

import pytest

NOTEBOOK = Path(__file__).resolve().parents[1] / "examples" / "tabular_workflow.ipynb"
# warnings a cell may not print: the ones the test suite turns into errors
_FORBIDDEN = ("ConvergenceWarning", "RuntimeWarning", "FutureWarning", "DeprecationWarning")


def test_tabular_workflow_notebook_runs_cleanly():
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    pytest.importorskip("ipykernel")
    pytest.importorskip("pandas")
    pytest.importorskip("matplotlib")

    notebook = nbformat.read(NOTEBOOK, as_version=4)
    client = nbclient.NotebookClient(
        notebook, timeout=300, kernel_name="python3",
        # the repository root as working directory: the kernel imports this
        # checkout's mixexp even when it is not installed
        resources={"metadata": {"path": str(NOTEBOOK.parents[1])}},
    )
    client.execute()  # raises CellExecutionError, naming the cell, if one fails

    for index, cell in enumerate(notebook.cells):
        for output in cell.get("outputs", []):
            text = output.get("text", "") if output.get("output_type") == "stream" else ""
            for warning in _FORBIDDEN:
                assert warning not in text, f"cell {index} printed a {warning}:\n{text}"
    # the last cells draw the figure and describe the groups
    assert any(output.get("output_type") == "display_data"
               for cell in notebook.cells for output in cell.get("outputs", []))
