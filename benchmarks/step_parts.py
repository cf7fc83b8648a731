"""What the pieces of a training step cost around the math, on the 2-D MLP of overhead.py.

Inside a short fit (so optimizers, hooks, loggers and Lightning's result collection are
set up as in training), after its last batch, each pair below is timed in alternating
rounds, so both sides see the same machine:

- the generator's update through its Lightning optimizer (what sets the step axis) against
  the same torch optimizer stepped directly;
- ``optimizer.zero_grad(set_to_none=True)`` against setting the gradients to None directly;
- one ``LightningModule.log`` call against writing the same value with
  ``ganforge.modules.logs.log_scalars``;
- the divergence guard's share of a step (``ganforge.modules.divergence``): keeping the
  step's loss, and reading the kept losses once every 25 steps (a logging step's check).

    python benchmarks/step_parts.py            # ~1 min on one thread
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import lightning as L
import torch
from overhead import CASES, ROOT, compose_cfg

from ganforge.modules.divergence import LossWatch
from ganforge.modules.logs import log_scalars
from ganforge.pipeline import build


def per_call_us(fn, calls: int) -> float:
    start = time.perf_counter()
    for _ in range(calls):
        fn()
    return (time.perf_counter() - start) / calls * 1e6


class Measure(L.Callback):
    def __init__(self, rounds: int, calls: int) -> None:
        self.rounds, self.calls, self.rows = rounds, calls, []

    def on_train_batch_end(self, trainer, gan, outputs, batch, batch_idx) -> None:
        if self.rows or trainer.global_step < trainer.max_steps:
            return
        torch_opt, lightning_opt = trainer.optimizers[0], gan.optimizers()[0]
        params = [p for group in torch_opt.param_groups for p in group["params"]]

        def with_grads(fn):
            def call():
                for p in params:
                    p.grad = torch.full_like(p, 1e-4)
                fn()

            return call

        def set_none():
            for p in params:
                p.grad = None

        watch, loss, kept = LossWatch(), torch.ones((), requires_grad=True) * 2.0, [0]

        def guard():  # what the base adds to a step: keep the loss; read them all every 25 steps
            watch.keep((("generator",), 1, 1), loss)
            kept[0] += 1
            if kept[0] % 25 == 0:
                torch.stack(watch.take()[1]).tolist()

        pairs = [
            ("generator update", "torch optimizer", with_grads(torch_opt.step), "Lightning optimizer",
             with_grads(lightning_opt.step)),
            ("reset gradients", "grad = None", with_grads(set_none), "zero_grad(set_to_none=True)",
             with_grads(lambda: torch_opt.zero_grad(set_to_none=True))),
            ("log one value", "log_scalars", lambda: log_scalars(trainer, {"bench/value": 1.0}, step=0),
             "LightningModule.log", lambda: gan.log("bench/value", 1.0, on_step=True, logger=False)),
            ("divergence guard, per step", "nothing", lambda: None, "keep the loss, check every 25", guard),
        ]  # fmt: skip
        for what, a_name, a, b_name, b in pairs:
            times_a, times_b = [], []
            for _ in range(self.rounds):
                times_a.append(per_call_us(a, self.calls))
                times_b.append(per_call_us(b, self.calls))
            self.rows.append(
                {
                    "what": what,
                    "a": a_name,
                    "b": b_name,
                    "a_us": statistics.median(times_a),
                    "b_us": statistics.median(times_b),
                    "b_minus_a_us": statistics.median(y - x for x, y in zip(times_a, times_b)),
                }
            )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--calls", type=int, default=500)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    args = parser.parse_args()
    cfg = compose_cfg(
        [*CASES["mlp"], "trainer.max_steps=20", "trainer.max_epochs=-1", "trainer.accelerator=cpu"],
        ROOT / "outputs" / "benchmarks" / "step_parts",
    )
    objects = build(cfg)
    trainer, gan = objects["trainer"], objects["model"]
    measure = Measure(args.rounds, args.calls)
    trainer.callbacks.append(measure)
    trainer.fit(gan, datamodule=objects["datamodule"])
    rows = measure.rows
    lines = [
        "| what | A | B | A us/call | B us/call | B - A us (median of rounds) |",
        "|---|---|---|---|---|---|",
    ]
    lines += [
        f"| {r['what']} | {r['a']} | {r['b']} | {r['a_us']:.1f} | {r['b_us']:.1f} | {r['b_minus_a_us']:.1f} |"
        for r in rows
    ]
    table = "\n".join(lines)
    print(table)
    env = {
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "rounds": args.rounds,
        "calls": args.calls,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "step_parts.json").write_text(json.dumps({"env": env, "rows": rows}, indent=2))
    (args.out / "step_parts.md").write_text(f"{table}\n\n{json.dumps(env)}\n")


if __name__ == "__main__":
    main()
