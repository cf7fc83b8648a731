"""The end of a Hydra job launched over DDP processes (ganforge.launch.end_launched_job)."""

from __future__ import annotations

import torch.distributed as dist

from ganforge import launch


def _group(tmp_path):
    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'store'}", rank=0, world_size=1)


def test_a_launched_rank_closes_its_group_at_the_end_of_its_job(tmp_path, monkeypatch):
    monkeypatch.setenv(launch.CHILD_MARK, "1")
    monkeypatch.delenv(launch.LAUNCHED_MARK, raising=False)
    _group(tmp_path)
    try:
        launch.end_launched_job()
        assert not dist.is_initialized()
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()


def test_a_process_that_launched_nothing_keeps_its_group(tmp_path, monkeypatch):
    # torchrun / SLURM ranks: the group is theirs to keep (a later trainer.test reuses it)
    monkeypatch.delenv(launch.CHILD_MARK, raising=False)
    monkeypatch.delenv(launch.LAUNCHED_MARK, raising=False)
    _group(tmp_path)
    try:
        launch.end_launched_job()
        assert dist.is_initialized()
    finally:
        dist.destroy_process_group()
