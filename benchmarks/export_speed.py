"""Generator inference speed on the CPU: PyTorch eager vs TorchScript vs onnxruntime.

Exports the EMA generator of a DCGAN (the default model: 32x32 digits, width 64,
latent 100; random weights, since speed does not depend on training) with
``ganforge.export``, then times images per second at batch 1 and 64 for each runtime
on the same inputs, after warm-up, in one thread each unless ``--threads`` says otherwise.
The runtimes take turns over several rounds and the median round is reported, so load
from other processes on a shared machine falls on all of them alike.

    OMP_NUM_THREADS=1 python benchmarks/export_speed.py
    python benchmarks/export_speed.py --model cdcgan --threads 4
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

import onnxruntime as ort
import torch
from hydra import compose, initialize_config_dir

from ganforge.export import ExportedGenerator, example_inputs, export_generator
from ganforge.pipeline import build_module

ROOT = Path(__file__).resolve().parents[1]


def images_per_second(run, n: int, seconds: float) -> float:
    calls, t0 = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - t0) < seconds or calls < 3:
        run()
        calls += 1
    return n * calls / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", default="dcgan", help="model config: dcgan, cdcgan, mlp")
    parser.add_argument("--image-size", type=int, default=32)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seconds", type=float, default=5.0, help="timing per case, over all rounds")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        cfg = compose(
            "train",
            overrides=[
                f"model={args.model}",
                f"data.image_size={args.image_size}",
                "paths.root_dir=.",
                "paths.output_dir=.",
            ],
        )
    module = build_module(cfg).eval()
    net = ExportedGenerator(module.sampling_generator)
    tmp = Path(tempfile.mkdtemp(prefix="ganforge-export-"))
    onnx_path, _ = export_generator(module, "onnx", tmp / "g.onnx")
    ts_path, _ = export_generator(module, "torchscript", tmp / "g.torchscript.pt")
    options = ort.SessionOptions()
    options.intra_op_num_threads = options.inter_op_num_threads = args.threads
    session = ort.InferenceSession(str(onnx_path), options, providers=["CPUExecutionProvider"])
    scripted = torch.jit.load(str(ts_path))

    load = os.getloadavg()[0]  # a shared machine makes every runtime slower; say how busy it was
    rows = []
    for batch in (1, 64):
        inputs = example_inputs(module, batch=batch, seed=batch)
        feeds = {i.name: x.numpy() for i, x in zip(session.get_inputs(), inputs)}
        with torch.inference_mode():
            runtimes = {
                "PyTorch eager": lambda inputs=inputs: net(*inputs),
                "TorchScript": lambda inputs=inputs: scripted(*inputs),
                "onnxruntime": lambda feeds=feeds: session.run(None, feeds),
            }
            for run in runtimes.values():  # warm-up: allocations, lazy initialisation, graph optimisation
                for _ in range(3):
                    run()
            # rounds interleave the runtimes, so a busy machine slows them alike; the median is reported
            rates = {name: [] for name in runtimes}
            for _ in range(args.rounds):
                for name, run in runtimes.items():
                    rates[name].append(images_per_second(run, batch, args.seconds / args.rounds))
            for name, values in rates.items():
                speed = statistics.median(values)
                rows.append({"runtime": name, "batch": batch, "images_per_s": speed, "rounds": values})
                print(f"batch {batch:3d}  {name:14s} {speed:10.1f} images/s", flush=True)

    eager = {r["batch"]: r["images_per_s"] for r in rows if r["runtime"] == "PyTorch eager"}
    lines = ["| runtime | batch | images/s | vs eager |", "|---|---|---|---|"]
    lines += [
        f"| {r['runtime']} | {r['batch']} | {r['images_per_s']:.0f} | {r['images_per_s'] / eager[r['batch']]:.2f}x |"
        for r in rows
    ]
    g = cfg.model.generator
    lines += [
        "",
        f"{args.model} generator, {args.image_size}x{args.image_size}, width {g.width}, latent "
        f"{g.latent_dim}; CPU ({platform.machine()}), {args.threads} thread(s); torch {torch.__version__}, "
        f"onnxruntime {ort.__version__}. Median of {args.rounds} interleaved rounds, {args.seconds:g} s per case in all, after 3 warm-up calls; "
        f"load average {load:.1f} on {os.cpu_count()} cores at the start.",
    ]
    table = "\n".join(lines)
    print(table)
    record = {
        "rows": rows,
        "args": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
        "load_average": load,
        "env": {"torch": torch.__version__, "onnxruntime": ort.__version__, "cpu": platform.machine()},
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "export_speed.json").write_text(json.dumps(record, indent=2) + "\n")
    (args.out / "export_speed.md").write_text(table + "\n")


if __name__ == "__main__":
    main()
