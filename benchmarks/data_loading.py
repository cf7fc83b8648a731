"""Data loading: the DataLoader path against data.on_device, and folder caching against lazy decoding.

Part 1, in-memory sets (digits-, MNIST- and CIFAR-10-shaped uint8 tensors; the
content does not change the cost): CPU microseconds per training batch through
``GANDataModule.train_dataloader()`` with the default DataLoader (batched
``__getitems__``, no workers) and with ``on_device=true`` (``DeviceBatches``; on
a CPU-only machine the "device" is the CPU, so this measures loader overhead, not
the saved host-to-device copy), each with and without ``hflip``.

Part 2, ``data=folder`` on fabricated files (CelebA-like 178x218 JPEGs with the
178 crop, and small 32x32 PNGs): the one-off cost of decoding everything into
memory (``cache``), then per-batch cost of the cached set against lazy decoding
in DataLoader workers.

    OMP_NUM_THREADS=1 python benchmarks/data_loading.py            # ~2 min
    python benchmarks/data_loading.py --batches 100 --repeats 5 --workers 0 2 4
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import tempfile
import time
import warnings
from pathlib import Path

import lightning as L
import numpy as np
import torch
from PIL import Image

from ganforge.data.base import GANDataModule, TensorDataset
from ganforge.data.folder import ImageFolderDataModule

ROOT = Path(__file__).resolve().parents[1]
SETS = {"digits": (1797, 1, 32), "mnist": (60000, 1, 32), "cifar10": (50000, 3, 32)}


def per_batch_us(loader, batches: int, clock=time.perf_counter) -> float:
    """Mean time per batch over ``batches`` batches of a fresh iterator."""
    it = iter(loader)
    next(it)  # the first batch pays for worker start-up and the epoch's permutation
    t0 = clock()
    for _ in range(batches):
        next(it)
    us = (clock() - t0) / batches * 1e6
    del it
    return us


def in_memory(batch_size: int, batches: int, repeats: int) -> list[dict]:
    """Both paths alternate within each repeat, so a busy shared machine slows both alike.

    Timed in process CPU time: neither path has worker processes, and CPU time is what
    other tenants of a shared machine disturb least.
    """
    rows = []
    for name, (n, c, s) in SETS.items():
        x = torch.randint(0, 256, (n, c, s, s), dtype=torch.uint8)
        y = torch.randint(0, 10, (n,))
        for hflip in (False, True):
            loaders = {}
            for on_device in (False, True):
                L.seed_everything(0, verbose=False)
                dm = GANDataModule(
                    batch_size=batch_size, image_size=s, channels=c, on_device=on_device, hflip=hflip
                )
                dm.train_set = TensorDataset(x, y)
                loaders["on_device_us" if on_device else "dataloader_us"] = dm.train_dataloader()
            k = min(batches, len(loaders["on_device_us"]) - 1)
            times = {key: [] for key in loaders}
            for _ in range(repeats):
                for key, loader in loaders.items():
                    times[key].append(per_batch_us(loader, k, clock=time.process_time))
            row = {"part": "in_memory", "set": name, "n": n, "batch": batch_size, "hflip": hflip}
            row |= {key: statistics.median(v) for key, v in times.items()}
            row["speedup"] = row["dataloader_us"] / row["on_device_us"]
            rows.append(row)
            print(row, flush=True)
    return rows


def fabricate(folder: Path, kind: str, n: int) -> None:
    rng = np.random.default_rng(0)
    folder.mkdir(parents=True)
    for i in range(n):
        if kind == "celeba_jpeg":
            # smooth content compresses like a photo; noise would make JPEG decoding look slow
            base = rng.integers(0, 256, size=(28, 23, 3), dtype=np.uint8)
            im = Image.fromarray(base).resize((178, 218), Image.Resampling.BICUBIC)
            im.save(folder / f"{i:06d}.jpg", quality=90)
        else:
            Image.fromarray(rng.integers(0, 256, size=(32, 32, 3), dtype=np.uint8)).save(
                folder / f"{i:05d}.png"
            )


def folder_rows(batch_size: int, batches: int, repeats: int, workers: list[int], n_files: int) -> list[dict]:
    rows = []
    cases = {"celeba_jpeg": {"crop": 178, "image_size": 64}, "png_32": {"crop": None, "image_size": 32}}
    with tempfile.TemporaryDirectory() as tmp:
        for kind, geometry in cases.items():
            folder = Path(tmp) / kind
            fabricate(folder, kind, n_files)
            t0 = time.perf_counter()
            dm = ImageFolderDataModule(folder, cache=False, verify=True, batch_size=batch_size, **geometry)
            dm.setup()
            verify_us = (time.perf_counter() - t0) / n_files * 1e6
            for threads in sorted({1, max(workers)}):
                cached = ImageFolderDataModule(
                    folder, cache=True, num_workers=threads, batch_size=batch_size, **geometry
                )
                t0 = time.perf_counter()
                cached.setup()
                decode_us = (time.perf_counter() - t0) / n_files * 1e6
                rows.append(
                    {
                        "part": "folder",
                        "set": kind,
                        "mode": f"cache setup, {threads} thread(s)",
                        "us_per_image": decode_us,
                    }
                )
            k = min(batches, len(cached.train_dataloader()) - 1)
            rows.append(
                {
                    "part": "folder",
                    "set": kind,
                    "mode": "cached, per batch",
                    "us_per_batch": statistics.median(
                        per_batch_us(cached.train_dataloader(), k) for _ in range(repeats)
                    ),
                }
            )
            rows.append(
                {
                    "part": "folder",
                    "set": kind,
                    "mode": "header check at setup (verify)",
                    "us_per_image": verify_us,
                }
            )
            for w in workers:
                lazy = ImageFolderDataModule(
                    folder, cache=False, verify=False, num_workers=w, batch_size=batch_size, **geometry
                )
                lazy.setup()
                us = statistics.median(
                    per_batch_us(lazy.train_dataloader(), k) for _ in range(max(1, repeats // 2))
                )
                rows.append(
                    {
                        "part": "folder",
                        "set": kind,
                        "mode": f"lazy, {w} worker(s), per batch",
                        "us_per_batch": us,
                    }
                )
            for r in rows[-len(workers) - 4 :]:
                print(r, flush=True)
    return rows


def table(rows: list[dict]) -> str:
    mem = [r for r in rows if r["part"] == "in_memory"]
    out = [
        "| set | images | batch | hflip | DataLoader µs/batch | on_device µs/batch | speed-up |",
        "|---|---|---|---|---|---|---|",
    ]
    out += [
        f"| {r['set']} | {r['n']} | {r['batch']} | {r['hflip']} | {r['dataloader_us']:.0f} | {r['on_device_us']:.0f} | {r['speedup']:.2f}x |"
        for r in mem
    ]
    out += ["", "| folder | mode | µs per image | µs per batch |", "|---|---|---|---|"]
    for r in rows:
        if r["part"] == "folder":
            per_img = f"{r['us_per_image']:.0f}" if "us_per_image" in r else ""
            per_batch = f"{r['us_per_batch']:.0f}" if "us_per_batch" in r else ""
            out.append(f"| {r['set']} | {r['mode']} | {per_img} | {per_batch} |")
    return "\n".join(out)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--batches", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 2])
    parser.add_argument("--files", type=int, default=512)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    rows = in_memory(args.batch_size, args.batches, args.repeats)
    rows += folder_rows(args.batch_size, args.batches, args.repeats, args.workers, args.files)
    env = {
        "torch": torch.__version__,
        "lightning": L.__version__,
        "threads": torch.get_num_threads(),
        "cpu": platform.machine(),
        "device": "cpu",
        "args": {k: str(v) for k, v in vars(args).items()},
    }
    md = table(rows)
    print(md)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "data_loading.json").write_text(json.dumps({"env": env, "rows": rows}, indent=2))
    (args.out / "data_loading.md").write_text(f"{md}\n\n{json.dumps(env)}\n")


if __name__ == "__main__":
    main()
