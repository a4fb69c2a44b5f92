"""examples/quickstart.ipynb (issue 32): saved without outputs, written against the public API
only, and executed top to bottom by nbclient in a real Jupyter kernel (ipykernel), on a tiny
model: a cell that raises fails the test, and the pictures and the progress bar must show."""
import json
import os
import re

import pytest

import singan
from conftest import ROOT

NOTEBOOK = ROOT / "examples" / "quickstart.ipynb"


def code_cells(notebook):
    return [cell for cell in notebook["cells"] if cell["cell_type"] == "code"]


def test_the_notebook_is_saved_without_outputs():
    notebook = json.loads(NOTEBOOK.read_text())
    assert code_cells(notebook)
    for cell in code_cells(notebook):
        assert cell["outputs"] == [] and cell["execution_count"] is None, cell["source"]
    assert "widgets" not in notebook["metadata"]          # no saved widget state either


def test_the_notebook_uses_the_public_api_only():
    """`singan.<name>` with names of singan.__all__ (and __version__), singan.imresize (a
    public module), and no other import from inside singan."""
    source = "\n".join("".join(cell["source"]) for cell in code_cells(json.loads(
        NOTEBOOK.read_text())))
    imports = re.findall(r"^\s*(?:from|import)\s+(singan[\w.]*)", source, re.M)
    assert set(imports) <= {"singan", "singan.imresize"}, imports
    used = set(re.findall(r"\bsingan\.(\w+)", source)) - {"imresize"}
    assert used and used <= set(singan.__all__) | {"__version__"}, used


def tiny_settings(tmp_path) -> str:
    """The parameters cell's values for a test: the checkout's images, a model in tmp_path,
    24 px and 30 iterations a scale (2 scales)."""
    images = ROOT / "Input"
    return "\n".join([
        f"IMAGE = {str(images / 'Images' / 'hubble_deep_field.png')!r}",
        f"NAIVE = {str(images / 'Harmonization' / 'hubble_deep_field_naive.png')!r}",
        f"MASK = {str(images / 'Harmonization' / 'hubble_deep_field_naive_mask.png')!r}",
        f"MODEL_DIR = {str(tmp_path / 'model')!r}",
        "MAX_SIZE, NITER, DEVICE = 32, 30, 'cpu'",
        "import torch; torch.set_num_threads(1)"])


@pytest.mark.slow
def test_the_notebook_runs_top_to_bottom(tmp_path):
    """The settings are replaced after the cell tagged "parameters" (as papermill does);
    every cell runs in a real kernel, whose error would raise CellExecutionError here."""
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    pytest.importorskip("ipykernel")
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    tagged = [i for i, cell in enumerate(notebook.cells)
              if "parameters" in cell.metadata.get("tags", [])]
    assert len(tagged) == 1
    notebook.cells.insert(tagged[0] + 1, nbformat.v4.new_code_cell(tiny_settings(tmp_path)))
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1")
    env.pop("MPLBACKEND", None)                 # the kernel's own inline backend shows plots
    client = nbclient.NotebookClient(notebook, timeout=120, kernel_name="python3",
                                     resources={"metadata": {"path": str(tmp_path)}})
    client.execute(env=env)

    outputs = [out for cell in code_cells(notebook) for out in cell.outputs]
    errors = [out for out in outputs if out.output_type == "error"]
    assert not errors, errors
    pictures = [out for out in outputs if "image/png" in out.get("data", {})]
    assert len(pictures) == 4                   # samples, the wide one, harmonization, losses
    widgets = [out for out in outputs
               if "application/vnd.jupyter.widget-view+json" in out.get("data", {})]
    assert widgets, "tqdm.auto showed no progress widget"   # the live bar (ipywidgets)
    text = "".join(out.get("text", "") for out in outputs)
    assert f"singan {singan.__version__}" in text
    assert "torch.Size([6, 3, 28, 32])" in text            # 6 samples of the 28 x 32 image
    assert "torch.Size([2, 3, 28, 64])" in text            # twice as wide
    assert (tmp_path / "model" / "model.pth").is_file()
