"""Does model=cdcgan draw the class it is asked for? Train on digits, classify the samples.

Trains the class-conditional DCGAN (conditional batch norm in G, projection D) on
data=digits through ``pipeline.build``, and after every few epochs draws
``--per-class`` samples of each class from the EMA generator and classifies them
with the digits CNN that ships with ganforge (``metrics/weights/digits_cnn.pt``,
99.6 % test accuracy on real digits). Reported: the share of samples classified
as the class requested (chance: 10 %), per class at the end, and the same
classifier's accuracy on the real training digits for scale.

    OMP_NUM_THREADS=1 python benchmarks/conditional_accuracy.py    # 80 epochs at 16x16, ~4 min on one core
    python benchmarks/conditional_accuracy.py --image-size 32 --width 64 --loss vanilla --epochs 30

Recognition follows sample quality: it stays near chance until the digits take
shape (~800 G steps here), then climbs (80 % after 2,240 G steps).
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import tempfile
import time
from pathlib import Path

import lightning as L
import torch
from hydra import compose, initialize_config_dir
from hydra.core.hydra_config import HydraConfig
from omegaconf import open_dict

from ganforge.callbacks.images import image_grid, save_png, to_uint8
from ganforge.metrics.extractors.digits import DigitsFeatures, reported_accuracy
from ganforge.pipeline import build

ROOT = Path(__file__).resolve().parents[1]


def compose_cfg(overrides: list[str], out_dir: Path):
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        cfg = compose(config_name="train", return_hydra_config=True, overrides=overrides)
    with open_dict(cfg):
        cfg.hydra.runtime.output_dir = str(out_dir)
        cfg.hydra.runtime.cwd = str(ROOT)
        cfg.hydra.job.num = 0
    HydraConfig.instance().set_config(cfg)
    return cfg


@torch.no_grad()
def class_accuracy(module, classifier: DigitsFeatures, per_class: int, seed: int):
    """Share recognised overall and per class, and the samples (class-major order)."""
    labels = torch.arange(10).repeat_interleave(per_class)
    g = torch.Generator().manual_seed(seed)  # the same noise at every evaluation
    images = module.sample(len(labels), labels=labels, generator=g).cpu()
    _, logits = classifier.features_and_logits(to_uint8(images))
    hit = (logits.argmax(1) == labels).float()
    return hit.mean().item(), hit.view(10, per_class).mean(1).tolist(), images


class Probe(L.Callback):
    def __init__(self, classifier, every: int, per_class: int) -> None:
        self.classifier, self.every, self.per_class = classifier, every, per_class
        self.t0, self.history = time.perf_counter(), []

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        epoch = trainer.current_epoch + 1
        if epoch % self.every and epoch != trainer.max_epochs:
            return
        acc, per, self.images = class_accuracy(pl_module, self.classifier, self.per_class, seed=1)
        row = {
            "epoch": epoch,
            "g_steps": pl_module.g_steps,
            "seconds": round(time.perf_counter() - self.t0, 1),
            "accuracy": acc,
            "per_class": per,
        }
        self.history.append(row)
        print(
            f"epoch {epoch:3d}  G steps {row['g_steps']:5d}  {row['seconds']:6.0f}s  accuracy {acc:.3f}",
            flush=True,
        )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--epochs", type=int, default=80)
    parser.add_argument("--every", type=int, default=10)
    parser.add_argument("--image-size", type=int, default=16, help="digits are 8x8 at source")
    parser.add_argument("--width", type=int, default=32)
    parser.add_argument("--latent", type=int, default=64)
    parser.add_argument("--loss", default="hinge", help="the objective Miyato & Koyama 2018 used")
    parser.add_argument("--per-class", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    args = parser.parse_args()

    run_dir = Path(
        tempfile.mkdtemp(prefix="ganforge-cacc-")
    )  # nothing is written there (no logger/callbacks)
    overrides = [
        "data=digits",
        "model=cdcgan",
        f"loss={args.loss}",
        f"data.image_size={args.image_size}",
        f"model.generator.width={args.width}",
        f"model.discriminator.width={args.width}",
        f"model.generator.latent_dim={args.latent}",
        f"trainer.max_epochs={args.epochs}",
        "trainer.accelerator=cpu",
        "trainer.enable_model_summary=false",
        "logger=none",
        "callbacks=none",
        f"seed={args.seed}",
    ]
    cfg = compose_cfg(overrides, run_dir)
    objects = build(cfg)
    classifier = DigitsFeatures()
    probe = Probe(classifier, args.every, args.per_class)
    trainer = objects["trainer"]
    trainer.callbacks.append(probe)
    trainer.fit(objects["model"], datamodule=objects["datamodule"])
    shutil.rmtree(run_dir, ignore_errors=True)

    dm = objects["datamodule"]
    real_x, real_y = dm.train_set.x, dm.train_set.y
    with torch.no_grad():
        _, logits = classifier.features_and_logits(to_uint8(real_x))
    real_acc = (logits.argmax(1) == real_y).float().mean().item()
    final = probe.history[-1]
    result = {
        "classifier": {
            "name": classifier.name,
            "reported": reported_accuracy(),
            "accuracy_on_training_digits": real_acc,
        },
        "history": probe.history,
        "final_accuracy": final["accuracy"],
        "chance": 0.1,
        "overrides": overrides,
        "env": {
            "torch": torch.__version__,
            "lightning": L.__version__,
            "threads": torch.get_num_threads(),
            "cpu": platform.machine(),
        },
    }
    lines = [
        "| epoch | G steps | seconds | requested class recognised |",
        "|---|---|---|---|",
        *(
            f"| {r['epoch']} | {r['g_steps']} | {r['seconds']:.0f} | {r['accuracy']:.1%} |"
            for r in probe.history
        ),
        "",
        "| class | " + " | ".join(str(k) for k in range(10)) + " |",
        "|---|" + "---|" * 10,
        "| recognised | " + " | ".join(f"{a:.0%}" for a in final["per_class"]) + " |",
        "",
        f"Classifier: {classifier.name} (shipped weights), {real_acc:.1%} on the real training digits "
        f"at {args.image_size}x{args.image_size} like the samples (the classifier resizes both to 32x32); "
        f"chance is 10%. {args.per_class} samples per class, fixed noise, EMA generator.",
    ]
    table = "\n".join(lines)
    print(table)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "conditional_accuracy.json").write_text(json.dumps(result, indent=2))
    (args.out / "conditional_accuracy.md").write_text(table + "\n\n" + " ".join(overrides) + "\n")
    # one row per class, the first 10 of each class's samples
    rows = probe.images.view(10, args.per_class, *probe.images.shape[1:])[:, :10]
    save_png(image_grid(rows.flatten(0, 1), nrow=rows.shape[1]), args.out / "conditional_accuracy.png")


if __name__ == "__main__":
    main()
