"""ONNX and TorchScript exports give PyTorch's output, read back by onnxruntime and torch."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir

import ganforge
from ganforge.export import export_files
from ganforge.pipeline import ConfigError

ort = pytest.importorskip("onnxruntime", reason="the [export] extra is not installed")

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def runs(tmp_path_factory, train_tiny) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("export")
    return {name: train_tiny(base / name, name) for name in ["dcgan", "cdcgan"]}


def export_cfg(*overrides: str):
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        return compose("export", overrides=list(overrides))


def inputs_for(gan, n: int):
    g = torch.Generator().manual_seed(123)
    z = torch.randn(n, gan.latent_dim, generator=g)
    classes = getattr(gan.sampling_generator, "num_classes", 0)
    return z, (torch.randint(classes, (n,), generator=g) if classes else None)


@pytest.mark.parametrize("run", ["dcgan", "cdcgan"])
def test_onnx_and_torchscript_match_pytorch(runs, run):
    gan = ganforge.load(runs[run])
    onnx_path, _ = export_files(export_cfg(f"ckpt_path={runs[run]}", "format=onnx"))
    ts_path, _ = export_files(export_cfg(f"ckpt_path={runs[run]}", "format=torchscript"))
    assert onnx_path.name == "last_generator.onnx" and ts_path.name == "last_generator.torchscript.pt"
    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    scripted = torch.jit.load(str(ts_path))
    for n in (1, 7):  # the batch axis is free
        z, labels = inputs_for(gan, n)
        expected = gan.sample(n, labels=labels, z=z)
        feeds = {"z": z.numpy()} if labels is None else {"z": z.numpy(), "labels": labels.numpy()}
        assert [i.name for i in session.get_inputs()] == list(feeds)
        from_onnx = torch.from_numpy(session.run(None, feeds)[0])
        from_ts = scripted(z) if labels is None else scripted(z, labels)
        assert from_onnx.shape == from_ts.shape == expected.shape == (n, 1, 16, 16)
        assert (from_onnx - expected).abs().max() < 1e-4
        assert (from_ts - expected).abs().max() < 1e-4


def test_export_refuses_to_overwrite_and_unknown_formats(runs, tmp_path):
    out = tmp_path / "g.pt"
    out.write_bytes(b"keep")
    with pytest.raises(ConfigError, match="overwrite=true"):
        export_files(export_cfg(f"ckpt_path={runs['dcgan']}", "format=torchscript", f"out={out}"))
    assert out.read_bytes() == b"keep"
    path, diff = export_files(
        export_cfg(f"ckpt_path={runs['dcgan']}", "format=torchscript", f"out={out}", "overwrite=true")
    )
    assert path == out and diff is not None and diff < 1e-4
    with pytest.raises(ConfigError, match="format must be one of"):
        export_files(export_cfg(f"ckpt_path={runs['dcgan']}", "format=tflite"))


def test_command_line(runs, tmp_path):
    out = tmp_path / "g.torchscript.pt"
    args = [
        f"ckpt_path={runs['dcgan']}",
        "format=torchscript",
        f"out={out}",
        f"hydra.run.dir={tmp_path / 'h'}",
    ]
    proc = subprocess.run(
        [sys.executable, str(ROOT / "src" / "export.py"), *args], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert out.is_file() and "max difference from PyTorch" in proc.stdout
