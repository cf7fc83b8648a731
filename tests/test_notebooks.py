"""The notebooks run top to bottom (nbclient, in a temporary directory) and are committed without outputs."""

from __future__ import annotations

from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir

from ganforge.pipeline import train

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))


def execute(name: str, cwd: Path):
    """Run a notebook in ``cwd``; a failing cell raises with its traceback."""
    book = nbformat.read(ROOT / "notebooks" / name, as_version=4)
    nbclient.NotebookClient(
        book, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(cwd)}}
    ).execute()
    return book


def outputs(book) -> tuple[str, int]:
    """All text the cells printed or displayed, and how many pictures they showed."""
    text, pictures = [], 0
    for cell in book.cells:
        for out in cell.get("outputs", []):
            if out.get("output_type") == "stream":
                text.append(out["text"])
            data = out.get("data", {})
            text.append(data.get("text/markdown", ""))
            pictures += "image/png" in data
    return "\n".join(text), pictures


def test_there_are_notebooks():
    assert {p.name for p in NOTEBOOKS} >= {"quickstart.ipynb", "compare_runs.ipynb"}


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_committed_notebooks_hold_no_outputs(path):
    book = nbformat.read(path, as_version=4)
    for i, cell in enumerate(book.cells):
        if cell.cell_type == "code":
            assert cell.outputs == [], f"{path.name} cell {i} holds outputs: clear them before committing"
            assert cell.execution_count is None, f"{path.name} cell {i} holds an execution count"


def test_quickstart_runs_on_the_cpu(tmp_path, monkeypatch):
    monkeypatch.setenv("GANFORGE_QUICK", "1")
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    book = execute("quickstart.ipynb", tmp_path)
    text, pictures = outputs(book)
    assert "modes covered:" in text and "latent 64" in text and "loss " in text
    assert pictures >= 5  # scatter, two grids, the walk, the repair
    assert (tmp_path / "quickstart_runs" / "digits" / "checkpoints" / "last.ckpt").is_file()
    assert (tmp_path / "quickstart_runs" / "ring" / "scatter.png").is_file()


@pytest.fixture(scope="module")
def sweep(tmp_path_factory) -> Path:
    """A sweep directory as Hydra's multirun leaves it: two real (tiny) runs with their CSV metrics."""
    root = tmp_path_factory.mktemp("sweep")
    for num, loss in enumerate(["vanilla", "hinge"]):
        run = root / str(num)
        overrides = [f"loss={loss}", "data.image_size=16", "model.generator.width=8"]
        with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
            cfg = compose(
                "train",
                overrides=[
                    *overrides,
                    "model.discriminator.width=8",
                    "trainer=debug",
                    "trainer.limit_train_batches=4",
                    "trainer.log_every_n_steps=1",
                    "trainer.detect_anomaly=false",
                    "++trainer.enable_progress_bar=false",
                    "trainer.enable_model_summary=false",
                    "metrics=none",
                    "callbacks=none",
                    "logger=csv",
                    f"paths.root_dir={root}",
                    f"paths.output_dir={run}",
                ],
            )
        train(cfg)
        (run / ".hydra").mkdir()
        (run / ".hydra" / "overrides.yaml").write_text("".join(f"- {o}\n" for o in overrides))
    return root


def test_compare_runs_builds_the_table_from_the_runs_without_a_summary(sweep, tmp_path, monkeypatch):
    monkeypatch.setenv("GANFORGE_SWEEP_DIR", str(sweep))
    text, pictures = outputs(execute("compare_runs.ipynb", tmp_path))
    assert "2 runs" in text and "no summary.csv" in text
    assert "loss=vanilla" in text and "loss=hinge" in text and "train/g_loss" in text
    assert pictures == 1 and "plotted" in text


def test_compare_runs_prefers_the_sweep_summary(sweep, tmp_path, monkeypatch):
    summary = sweep / "summary.csv"
    summary.write_text("run,loss,fid\n0,vanilla,123.4\n1,hinge,99.9\n")
    try:
        monkeypatch.setenv("GANFORGE_SWEEP_DIR", str(sweep))
        text, _ = outputs(execute("compare_runs.ipynb", tmp_path))
    finally:
        summary.unlink()
    assert "Summary from summary.csv" in text and "99.9" in text
