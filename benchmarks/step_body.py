"""Does GAN.training_step cost more than a bare loop body? Timed batch by batch, interleaved.

Inside one ganforge fit (mlp, 2-D ring, batch 256, 8 steps per loader batch), even
batches run ``GAN.training_step`` and odd batches a bare body doing the same D step, G
step and EMA update on the same nets and optimizers. Alternating every batch puts both
under the same machine load, which end-to-end runs on a shared CPU do not (their speed
drifts by +-20 % from run to run).

    OMP_NUM_THREADS=1 python benchmarks/step_body.py --steps 3000
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import overhead

from ganforge.module import GAN

ROOT = Path(__file__).resolve().parents[1]


def bare_body(module: GAN, batch, batch_idx: int) -> None:
    x, _ = batch
    G, D, loss = module.generator, module.discriminator, module.loss
    progress = module.trainer.fit_loop.epoch_loop.manual_optimization.optim_step_progress
    for real in x.split(module.minibatch_size):
        with torch.no_grad():
            fake = G(torch.randn(real.shape[0], G.latent_dim))
        d_loss = loss.d_loss(D(real), D(fake))
        module._d_opt.zero_grad(set_to_none=True)
        d_loss.backward()
        module._d_opt.step()
        D.requires_grad_(False)
        g_loss = loss.g_loss(D(G(torch.randn(real.shape[0], G.latent_dim))))
        module._g_opt.zero_grad(set_to_none=True)
        g_loss.backward()
        module._g_opt.step()
        D.requires_grad_(True)
        module.g_steps += 1
        module._update_ema()
        progress.increment_ready()
        progress.increment_completed()
    if module.g_steps >= module.trainer.max_steps:
        module.trainer.should_stop = True


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--steps", type=int, default=3000)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    args = parser.parse_args()
    module_step = GAN.training_step
    times: dict[str, list[float]] = {"GAN.training_step": [], "bare body": []}

    def alternating(self, batch, batch_idx):
        name = "GAN.training_step" if batch_idx % 2 == 0 else "bare body"
        t = time.perf_counter()
        (module_step if batch_idx % 2 == 0 else bare_body)(self, batch, batch_idx)
        if batch_idx >= 20:  # after the warm-up
            times[name].append(time.perf_counter() - t)

    GAN.training_step = alternating
    try:
        overrides = [
            *overhead.CASES["mlp"],
            "logger=none",
            f"trainer.max_steps={args.steps + 100}",
            "trainer.max_epochs=-1",
            "trainer.accelerator=cpu",
        ]
        objs = overhead.build(overhead.compose_cfg(overrides, ROOT / "outputs" / "benchmarks" / "step_body"))
        objs["trainer"].fit(objs["model"], datamodule=objs["datamodule"])
    finally:
        GAN.training_step = module_step
    rows = {
        k: {"median_ms": 1000 * statistics.median(v), "mean_ms": 1000 * statistics.mean(v), "batches": len(v)}
        for k, v in times.items()
    }
    ratio = rows["bare body"]["median_ms"] / rows["GAN.training_step"]["median_ms"]
    lines = ["| body | median ms per 8-step batch | mean | batches |", "|---|---|---|---|"]
    lines += [
        f"| {k} | {r['median_ms']:.2f} | {r['mean_ms']:.2f} | {r['batches']} |" for k, r in rows.items()
    ]
    table = "\n".join(lines) + f"\n\nbare / GAN.training_step time (medians): {ratio:.3f}"
    print(table)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "step_body.json").write_text(
        json.dumps({"rows": rows, "ratio": ratio, "threads": torch.get_num_threads()}, indent=2)
    )
    (args.out / "step_body.md").write_text(table + "\n")


if __name__ == "__main__":
    main()
