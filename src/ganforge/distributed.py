"""Small collectives the GAN strategy needs: buffer broadcast, per-rank seeds, a weight check.

Every function is a no-op (or trivially true) without an initialised process group,
so the same code runs in a single process.
"""

from __future__ import annotations

import re
from collections import defaultdict

import torch
import torch.distributed as dist
from torch import Tensor, nn


def _distributed() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def _flat_by_dtype(tensors: list[Tensor]) -> dict[torch.dtype, list[Tensor]]:
    groups: dict[torch.dtype, list[Tensor]] = defaultdict(list)
    for t in tensors:
        groups[t.dtype].append(t)
    return groups


@torch.no_grad()
def broadcast_buffers_(module: nn.Module, src: int = 0) -> None:
    """Overwrite every buffer of ``module`` (BatchNorm running statistics, ...) with rank ``src``'s.

    One flattened broadcast per dtype rather than one per tensor: a DCGAN holds a few
    dozen small buffers, and a collective costs about the same whatever its size.
    """
    buffers = [b for b in module.buffers() if b.numel()]
    if not buffers or not _distributed():
        return
    for tensors in _flat_by_dtype(buffers).values():
        flat = torch.cat([t.reshape(-1) for t in tensors])
        dist.broadcast(flat, src)
        torch._foreach_copy_(
            tensors, [f.view_as(t) for f, t in zip(flat.split([t.numel() for t in tensors]), tensors)]
        )


def rank_seed(seed: int, rank: int, world_size: int) -> int:
    """The seed of ``rank``'s training noise: ``seed * world_size + rank``.

    Offsetting by rank after scaling by the world size (as stylegan2-ada does) keeps the
    streams of a seed sweep apart: ``seed + rank`` would give rank 1 of seed 1 the noise
    of rank 0 of seed 2.
    """
    return int(seed) * int(world_size) + int(rank)


@torch.no_grad()
def check_ddp_consistency(module: nn.Module, ignore: str | None = None) -> list[str]:
    """Names of the parameters and buffers that differ from rank 0's on any rank.

    The cross-rank weight check of stylegan2-ada's ``check_ddp_consistency``: after
    training every rank must hold the same networks. Values are compared exactly (as
    float64, which holds every float32/bf16/fp16 and integer buffer value); NaN equals
    NaN. ``ignore``: a regular expression of names to skip. Collective: every rank must
    call it, and every rank gets the same answer.
    """
    if not _distributed():
        return []
    pattern = re.compile(ignore) if ignore else None
    named = [
        (name, t)
        for name, t in [*module.named_parameters(), *module.named_buffers()]
        if t.numel() and not (pattern and pattern.fullmatch(name))
    ]
    if not named:
        return []
    mine = torch.cat([t.detach().reshape(-1).to(torch.float64) for _, t in named])
    theirs = mine.clone()
    dist.broadcast(theirs, 0)
    same = (mine == theirs) | (mine.isnan() & theirs.isnan())
    differing = [
        name for (name, _), ok in zip(named, same.split([t.numel() for _, t in named])) if not bool(ok.all())
    ]
    everyone: list[list[str] | None] = [None] * dist.get_world_size()
    dist.all_gather_object(everyone, differing)
    return sorted({name for names in everyone for name in names or []})
