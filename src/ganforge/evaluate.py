"""The metrics of a trained checkpoint: ``python src/eval.py ckpt_path=... metrics.num_fake=10000``.

FID, IS, KID, precision/recall and density/coverage; for a conditional model also
intra-class FID (per class under ``per_class``) and, on digits, class accuracy.

The checkpoint carries the resolved training config (``ckpt["ganforge"]["config"]``),
so the GAN and its datamodule are rebuilt from it; the metrics protocol comes from
the eval config's ``metrics`` group (digits by default). The result, with the
protocol and the checkpoint's sha256, is written as JSON next to the run.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
from pathlib import Path
from typing import Any

from hydra.utils import instantiate
from omegaconf import DictConfig

from ganforge.checkpoint import load_checkpoint, module_from_checkpoint, pick_device
from ganforge.metrics.callback import ImageMetrics
from ganforge.pipeline import ConfigError

log = logging.getLogger("ganforge")


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def default_output(ckpt: Path) -> Path:
    """<run>/metrics.json for <run>/checkpoints/x.ckpt, else beside the checkpoint."""
    run_dir = ckpt.parent.parent if ckpt.parent.name == "checkpoints" else ckpt.parent
    return run_dir / "metrics.json"


def write_json_atomic(data: dict, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        json.dump(data, f, indent=2)
        f.write("\n")
    os.replace(tmp, path)
    return path


def evaluate(cfg: DictConfig) -> dict[str, Any]:
    """Compute the metrics of ``cfg.ckpt_path`` and write them; returns what was written."""
    path, ckpt, train_cfg = load_checkpoint(cfg.get("ckpt_path"))
    if not cfg.get("metrics"):
        raise ConfigError("metrics=none: pick a metrics protocol, e.g. metrics=digits or metrics=inception")
    callback: ImageMetrics = instantiate(cfg.metrics)
    if callback.evaluator is None:
        raise ConfigError("metrics.extractor is null: nothing to evaluate with")
    datamodule = instantiate(train_cfg.data)
    if getattr(datamodule, "image_size", None) is None:
        raise ConfigError(
            f"the checkpoint was trained on non-image data ({train_cfg.data._target_}); FID/IS/KID need images"
        )
    device = pick_device(cfg.get("device"))
    module = module_from_checkpoint(path, ckpt, train_cfg).to(device)
    evaluator = callback.evaluator
    evaluator.prepare(datamodule, device, num_classes=getattr(module, "num_classes", 0))
    results = evaluator.evaluate(module)
    record = {
        "results": results,
        **evaluator.details(),  # per-class values of conditional models
        **evaluator.protocol(),
        "checkpoint": str(path),
        "checkpoint_sha256": sha256_file(path),
        "global_step": ckpt.get("global_step"),
        "epoch": ckpt.get("epoch"),
        "g_steps": module.g_steps,
        "kimg": module.kimg,
        "data": train_cfg.data.get("_target_"),
        "device": str(device),
    }
    out = Path(str(cfg.out)) if cfg.get("out") else default_output(path)
    write_json_atomic(record, out)
    log.info("%s -> %s", ", ".join(f"{k}={v:.4g}" for k, v in results.items()), out)
    return record
