"""Run by tests/test_ddp.py in its own process: the cross-rank weight check on two gloo ranks.

``python tests/ddp_worker_consistency.py <out>``: each rank writes what the check found,
with equal weights, after perturbing rank 1's, with a name ignored, and after the buffer
broadcast, to ``<out>/consistency<rank>.json``. Imports torch only, so both ranks start fast.
"""

from __future__ import annotations

import json
import os
import socket
import sys
from pathlib import Path

import torch


def rank_main(rank: int, port: int, out: str) -> None:
    import torch.distributed as dist

    from ganforge.distributed import broadcast_buffers_, check_ddp_consistency

    torch.set_num_threads(1)
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=2)
    try:
        torch.manual_seed(0)
        net = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.BatchNorm1d(4))
        found = {"equal": check_ddp_consistency(net)}
        if rank == 1:
            with torch.no_grad():
                net[0].bias[2] += 1e-6
                net[1].running_mean += 1.0
        found["differing"] = check_ddp_consistency(net)
        found["ignored"] = check_ddp_consistency(net, ignore=r".*running_mean")
        broadcast_buffers_(net)
        found["after_broadcast"] = check_ddp_consistency(net)
        Path(out, f"consistency{rank}.json").write_text(json.dumps(found))
    finally:
        dist.destroy_process_group()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


if __name__ == "__main__":
    import torch.multiprocessing as mp

    mp.spawn(rank_main, args=(free_port(), sys.argv[1]), nprocs=2)
