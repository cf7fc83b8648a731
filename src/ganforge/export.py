"""The EMA generator as a file other runtimes can run: ONNX or TorchScript.

The exported graph maps noise ``z`` (batch, latent_dim), and ``labels`` (batch,)
int64 for conditional models, to images (batch, C, H, W) in [-1, 1] (points
(batch, 2) for the 2-D toys); the batch size is free. ONNX goes through
``torch.onnx.export``'s torch.export-based exporter (it needs onnxscript, part of
the ``[export]`` extra); TorchScript through ``torch.jit.trace`` (deprecated
upstream in favour of torch.export, but still what C++ ``torch::jit::load`` and
older serving stacks read). After writing, the file is run on fresh inputs and
compared with PyTorch.
"""

from __future__ import annotations

import logging
import warnings
from pathlib import Path

import torch
from torch import Tensor, nn

from ganforge.modules.gan import GAN
from ganforge.pipeline import ConfigError

FORMATS = {"onnx": ".onnx", "torchscript": ".torchscript.pt"}
TOLERANCE = 1e-4


class ExportedGenerator(nn.Module):
    """The sampling generator in eval mode, with labels a required input when it is conditional."""

    def __init__(self, generator: nn.Module) -> None:
        super().__init__()
        self.generator = generator.eval()

    def forward(self, z: Tensor, labels: Tensor | None = None) -> Tensor:
        return self.generator(z, labels)


def example_inputs(module: GAN, batch: int = 2, seed: int = 0) -> tuple[Tensor, ...]:
    g = torch.Generator().manual_seed(seed)
    z = torch.randn(batch, module.latent_dim, generator=g)
    classes = module.num_classes
    return (z, torch.randint(classes, (batch,), generator=g)) if classes else (z,)


def export_onnx(net: ExportedGenerator, inputs: tuple[Tensor, ...], path: Path) -> Path:
    try:
        import onnxscript  # noqa: F401  (what the exporter needs; checked here for a clear message)
    except ImportError as err:
        raise ConfigError("format=onnx needs the export extra: pip install 'ganforge[export]'") from err
    for name in ("onnx_ir", "onnxscript"):  # their graph passes log every step at INFO
        logging.getLogger(name).setLevel(logging.WARNING)
    batch = torch.export.Dim("batch")
    names = ["z", "labels"][: len(inputs)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the exporter's notes on eval mode and shared axis names
        torch.onnx.export(
            net,
            inputs,
            str(path),
            input_names=names,
            output_names=["image"],
            dynamic_shapes=tuple({0: batch} for _ in inputs),
            external_data=False,
            verbose=False,
        )
    return path


def export_torchscript(net: ExportedGenerator, inputs: tuple[Tensor, ...], path: Path) -> Path:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # torch.jit's deprecation notice
        traced = torch.jit.trace(net, inputs)
    traced.save(str(path))
    return path


def run_exported(path: Path, inputs: tuple[Tensor, ...]) -> Tensor:
    """What the exported file computes on ``inputs``, with its own runtime on the CPU."""
    if path.suffix == ".onnx":
        import onnxruntime as ort

        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        names = [i.name for i in session.get_inputs()]
        return torch.from_numpy(session.run(None, {n: x.numpy() for n, x in zip(names, inputs)})[0])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        loaded = torch.jit.load(str(path), map_location="cpu")
    return loaded(*inputs)


@torch.no_grad()
def export_generator(module: GAN, fmt: str, path: Path, verify: bool = True) -> tuple[Path, float | None]:
    """Write the sampling generator to ``path``; returns it and the largest difference from
    PyTorch on fresh inputs (None when ``verify`` is off). The module is moved to the CPU."""
    if fmt not in FORMATS:
        raise ConfigError(f"format must be one of {sorted(FORMATS)}, got {fmt!r}")
    module = module.cpu()
    net = ExportedGenerator(module.sampling_generator)
    path.parent.mkdir(parents=True, exist_ok=True)
    inputs = example_inputs(module, batch=2)
    (export_onnx if fmt == "onnx" else export_torchscript)(net, inputs, path)
    if not verify:
        return path, None
    check = example_inputs(module, batch=5, seed=1)  # another batch size: the batch axis is free
    diff = float((run_exported(path, check) - net(*check)).abs().max())
    if not diff <= TOLERANCE:
        raise RuntimeError(f"{path} differs from PyTorch by {diff:.3g} (> {TOLERANCE}) on the same inputs")
    return path, diff


def export_files(cfg) -> tuple[Path, float | None]:
    """What ``python src/export.py`` does."""
    from ganforge.checkpoint import beside, load_checkpoint, module_from_checkpoint
    from ganforge.writing import refuse_overwrite

    fmt = cfg.get("format")
    if fmt not in FORMATS:
        raise ConfigError(f"format must be one of {sorted(FORMATS)}, got {fmt!r}")
    path, ckpt, train_cfg = load_checkpoint(cfg.get("ckpt_path"))
    out = Path(str(cfg.out)) if cfg.get("out") else beside(path, f"_generator{FORMATS[fmt]}")
    refuse_overwrite([out], bool(cfg.get("overwrite", False)))
    module = module_from_checkpoint(path, ckpt, train_cfg)
    return export_generator(module, fmt, out, verify=bool(cfg.get("verify", True)))
