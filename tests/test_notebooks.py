"""The lecture's notebooks (notebooks/*.ipynb) run top to bottom on this install, and are stored without outputs.

Each notebook asserts its own key numbers (61,706 parameters, the 8 of the padded strided example, the held-out
accuracy after training), so a notebook that runs but shows a wrong number fails here too.
"""
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat", reason="the notebook tests need nbformat and nbclient (pip install '.[test]')")
nbclient = pytest.importorskip("nbclient")
pytest.importorskip("ipykernel", reason="the notebook tests need ipykernel (pip install '.[test]')")

NOTEBOOKS = sorted((Path(__file__).resolve().parents[1] / "notebooks").glob("*.ipynb"))
CELL_TIMEOUT_S = 600          # a cell that runs longer than this fails (training is seconds on 2 cores)


def test_the_three_notebooks_are_there():
    assert [p.name for p in NOTEBOOKS] == ["1_convolution_arithmetic_and_edges.ipynb", "2_lenet5_alexnet_vgg16.ipynb",
                                           "3_inside_and_transfer.ipynb"]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_stored_without_outputs(path):
    nb = nbformat.read(path, as_version=4)
    dirty = [i for i, c in enumerate(nb.cells) if c.cell_type == "code" and (c.outputs or c.execution_count)]
    assert not dirty, f"{path.name}: code cells {dirty} have stored outputs; clear them (jupyter nbconvert --clear-output)"


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_runs_top_to_bottom(path, tmp_path):
    nb = nbformat.read(path, as_version=4)
    # The kernel is this interpreter's (ipykernel's "python3"), run in a scratch folder; figures use the
    # kernel's inline backend, which needs no screen.
    client = nbclient.NotebookClient(nb, timeout=CELL_TIMEOUT_S, kernel_name="python3",
                                     resources={"metadata": {"path": str(tmp_path)}})
    try:
        client.execute()
    except nbclient.exceptions.CellExecutionError as e:
        pytest.fail(f"{path.name}: a cell raised:\n{str(e)[-3000:]}", pytrace=False)
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs if o.output_type == "error"]
    assert not errors
