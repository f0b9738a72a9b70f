"""Both notebooks run top to bottom (nbclient, a real Jupyter kernel) on small data, and are
stored in git without outputs."""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from tests.helpers import ARTIFACTS, ROOT

NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))


def test_there_are_two_notebooks():
    assert [p.name for p in NOTEBOOKS] == ["01_explore_icu.ipynb", "02_train_evaluate.ipynb"]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_outputs_are_stripped(path: Path):
    nb = nbformat.read(path, as_version=4)
    for cell in nb.cells:
        if cell.cell_type == "code":
            assert cell.outputs == [] and cell.execution_count is None, f"{path.name}: outputs committed"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_runs_top_to_bottom(path: Path, tmp_path: Path, monkeypatch):
    monkeypatch.setenv("NB_PATIENTS", "250")
    monkeypatch.setenv("NB_TREES", "25")
    monkeypatch.setenv("NB_RF", "0")
    monkeypatch.setenv("VITALWATCH__MODELS__MLFLOW_DIR", str(tmp_path / "mlflow"))
    monkeypatch.setenv("VITALWATCH__SPARK__MASTER", "local[2]")
    nb = nbformat.read(path, as_version=4)
    NotebookClient(nb, timeout=600, kernel_name="python3",
                   resources={"metadata": {"path": str(path.parent)}}).execute()
    out = ARTIFACTS / "notebooks"
    out.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, out / path.name)  # the executed copy, for reading after CI
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs if o.output_type == "error"]
    assert not errors
    text = "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.outputs)
    if path.stem.startswith("02"):
        assert "is the first model: champion" in text and "vitalwatch-crisis-risk/1" in text
    else:
        assert "values from 250 patients" in text
