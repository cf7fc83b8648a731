"""Run by test_metrics_ddp.py in its own process: the metrics from 2 gloo ranks, and from one process
fed the very samples the two ranks drew, written as JSON to the folder given on the command line.
Twice: an unconditional sampler (FID, IS, KID, precision/recall/density/coverage) and a
conditional one (also intra-class FID per class and class accuracy).

The ranks drive the evaluator directly (not a Trainer): Lightning's default DDP wraps the
whole GAN module, and what is tested here is the metric state synchronisation.
"""

from __future__ import annotations

import gc
import json
import math
import os
import socket
import sys
from pathlib import Path

import torch
import torch.multiprocessing as mp

WORLD = 2
NUM_FAKE = 301  # odd: each rank draws ceil(301 / 2) = 151


def evaluator(cache_dir: str):
    from ganforge.metrics.evaluator import FidelityEvaluator
    from ganforge.metrics.extractors.digits import DigitsFeatures

    return FidelityEvaluator(
        DigitsFeatures(),
        num_fake=NUM_FAKE,
        batch_size=64,
        seed=5,
        kid_subsets=10,
        kid_subset_size=100,
        cache_dir=cache_dir,
    )


def digits() -> torch.Tensor:
    return labelled_digits()[0]


def labelled_digits() -> tuple[torch.Tensor, torch.Tensor]:
    from ganforge.data.digits import load_digits_tensor

    return load_digits_tensor(32)


def real_data():
    from metrics_stubs import ImageData

    return ImageData(digits()[:401])


def sampler():
    from metrics_stubs import StubSampler

    return StubSampler(digits(), noise=0.3)


def labelled_real_data():
    from metrics_stubs import LabelledImageData

    x, y = labelled_digits()
    return LabelledImageData(x[:401], y[:401], label_kind="digits")


def conditional_sampler():
    from metrics_stubs import LabelledDigits

    return LabelledDigits(*labelled_digits(), noise=0.3)


def rank_main(rank: int, port: int, cache_dir: str, out: str) -> None:
    import torch.distributed as dist

    sys.path.insert(0, str(Path(__file__).resolve().parent))  # metrics_stubs
    torch.set_num_threads(1)
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=WORLD)
    try:
        ev = evaluator(cache_dir)
        ev.prepare(real_data(), "cpu", rank=rank, world_size=WORLD, barrier=dist.barrier)
        results = ev.evaluate(sampler(), rank=rank, world_size=WORLD)
        record = {"results": results, "n_fake": ev.n_fake, "n_real": ev.real.count}
        Path(out, f"rank{rank}.json").write_text(json.dumps(record))
        ev = evaluator(cache_dir + "_conditional")
        ev.prepare(
            labelled_real_data(), "cpu", rank=rank, world_size=WORLD, barrier=dist.barrier, num_classes=10
        )
        results = ev.evaluate(conditional_sampler(), rank=rank, world_size=WORLD)
        record = {"results": results, **ev.details()}
        Path(out, f"conditional_rank{rank}.json").write_text(json.dumps(record))
        dist.barrier()  # no rank closes the group while the other still has messages in flight
    finally:
        gc.collect()  # collective work objects freed now, not by gloo's threads at interpreter exit
        dist.destroy_process_group()
    if rank == 0:  # here rather than in the parent, which then needs no heavy imports
        Path(out, "single.json").write_text(json.dumps({"results": single_process(cache_dir)}))
        results, details = single_process_conditional(cache_dir + "_conditional")
        Path(out, "conditional_single.json").write_text(json.dumps({"results": results, **details}))


def single_process(cache_dir: str) -> dict:
    """One process, the same samples: rank r's share drawn with seed + r, in rank order."""
    ev = evaluator(cache_dir)
    ev.prepare(real_data(), "cpu")
    share, stub = math.ceil(NUM_FAKE / WORLD), sampler()
    for rank in range(WORLD):
        g = torch.Generator().manual_seed(ev.seed + rank)
        for start in range(0, share, ev.batch_size):
            ev.update(stub.sample(min(ev.batch_size, share - start), generator=g))
    return ev.compute()


def single_process_conditional(cache_dir: str) -> tuple[dict, dict]:
    """As ``single_process``, with each rank's labels drawn as the evaluator draws them."""
    from ganforge.metrics.evaluator import _draw

    ev = evaluator(cache_dir)
    ev.prepare(labelled_real_data(), "cpu", num_classes=10)
    share, stub = math.ceil(NUM_FAKE / WORLD), conditional_sampler()
    for rank in range(WORLD):
        g = torch.Generator().manual_seed(ev.seed + rank)
        for start in range(0, share, ev.batch_size):
            ev.update(*_draw(stub, min(ev.batch_size, share - start), g, stub.num_classes))
    return ev.compute(conditional=True), ev.details()


if __name__ == "__main__":
    out = Path(sys.argv[1])
    cache = str(out / "cache")
    with socket.socket() as s:  # a free port for this run alone
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    mp.spawn(rank_main, args=(port, cache, str(out)), nprocs=WORLD)
