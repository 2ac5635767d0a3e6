"""Every notebook runs top to bottom (in a temporary copy, with the fast
setting TAPEGRAD_NOTEBOOK_FAST=1 that shortens training)."""
import os
import shutil
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOKS = sorted(p for p in (ROOT / "notebooks").rglob("*.ipynb")
                   if ".ipynb_checkpoints" not in p.parts and "release" not in p.parts)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[str(p.relative_to(ROOT / "notebooks")) for p in NOTEBOOKS])
def test_notebook_runs(path, tmp_path, monkeypatch):
    work = tmp_path / path.parent.name
    shutil.copytree(path.parent, work, dirs_exist_ok=True)
    nb = nbformat.read(work / path.name, as_version=4)
    monkeypatch.setenv("TAPEGRAD_NOTEBOOK_FAST", "1")
    monkeypatch.setenv("MPLBACKEND", "Agg")
    if not os.environ.get("TAPEGRAD_DATA"):  # CI sets it; locally use the sibling data dir
        monkeypatch.setenv("TAPEGRAD_DATA", str(ROOT.parent / "shared" / "data" / "mnist"))
    pypath = str(ROOT / "python")
    monkeypatch.setenv("PYTHONPATH", pypath + os.pathsep + os.environ.get("PYTHONPATH", ""))
    client = nbclient.NotebookClient(nb, timeout=900, kernel_name="python3",
                                     resources={"metadata": {"path": str(work)}})
    client.execute()  # raises CellExecutionError naming the failing cell
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])
              if o.get("output_type") == "error"]
    assert not errors
