"""Precision/recall and density/coverage of generated features against real ones; a memorisation check.

- Improved precision and recall (Kynkäänniemi et al. 2019, "Improved Precision and
  Recall Metric for Assessing Generative Models"): the real manifold is the union of
  balls around each real feature whose radius is the distance to its k-th nearest real
  neighbour (itself excluded); precision is the share of fakes inside it. Recall swaps
  the roles: the share of reals inside the fakes' balls (k-th nearest fake).
- Density and coverage (Naeem et al. 2020, "Reliable Fidelity and Diversity Metrics for
  Generative Models"): density counts, per fake, the real balls that contain it, divided
  by k and averaged (1 when fakes are distributed like reals, unbounded above); coverage
  is the share of reals whose ball contains at least one fake.

A point is inside a ball when its distance to the centre is <= the radius (the
papers' closed balls). The reference package ``prdc`` compares with a strict ``<``;
the two agree unless a distance equals a radius exactly, which does not happen with
continuous features. Distances are Euclidean in float64 and are compared squared
(the same order, no square roots), computed a block of rows at a time so that 10k x 10k
pairs never sit in memory at once (a 1024-row block against 10k points is 80 MB).
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch import Tensor

BLOCK_ROWS = 1024


def _squared_distance_blocks(a: Tensor, b: Tensor, block: int = BLOCK_ROWS) -> Iterator[tuple[int, Tensor]]:
    """(first row, ||a[rows] - b||^2) for consecutive row blocks of ``a``, in float64, clamped at 0."""
    a, b = a.double(), b.double()
    b_sq = (b * b).sum(1)
    for start in range(0, len(a), block):
        rows = a[start : start + block]
        # |x|^2 + |y|^2 - 2 x.y: one matrix product per block, in place; rounding can dip below 0
        d2 = (rows @ b.T).mul_(-2.0).add_(b_sq).add_((rows * rows).sum(1, keepdim=True))
        yield start, d2.clamp_(min=0)


def _check(name: str, x: Tensor) -> Tensor:
    if x.dim() != 2:
        raise ValueError(f"{name} must be (N, D) features, got shape {tuple(x.shape)}")
    return x


def neighbour_radii(x: Tensor, ks: tuple[int, ...], block: int = BLOCK_ROWS) -> list[Tensor]:
    """For each k in ``ks``: the squared distance from each row of ``x`` to its k-th nearest other row.

    A row is not its own neighbour (excluded by index, so a duplicate of it still counts).
    One pass over the pairs serves every k.
    """
    _check("features", x)
    top = max(ks)
    if min(ks) < 1 or top >= len(x):
        raise ValueError(f"the k-th nearest neighbour needs 1 <= k < N, got k={top} with N={len(x)}")
    parts = []
    for start, d2 in _squared_distance_blocks(x, x, block):
        rows = torch.arange(len(d2), device=d2.device)
        d2[rows, start + rows] = float("inf")
        parts.append(d2.topk(top, dim=1, largest=False, sorted=True).values)
    nearest = torch.cat(parts)  # (N, max k), ascending
    return [nearest[:, k - 1] for k in ks]


def kth_neighbour_radii(x: Tensor, k: int, block: int = BLOCK_ROWS) -> Tensor:
    """Squared distance from each row of ``x`` to its k-th nearest other row (itself excluded)."""
    return neighbour_radii(x, (k,), block)[0]


def real_radii_for(real: Tensor, pr_k: int | None, dc_k: int | None, block: int = BLOCK_ROWS) -> list[Tensor]:
    """The reals' k-th neighbour radii that ``precision_recall_density_coverage`` needs (one pass)."""
    ks = tuple(k for k in (pr_k, dc_k) if k is not None and k > 0)
    return neighbour_radii(_check("real features", real), ks, block) if ks else []


def precision_recall_density_coverage(
    real: Tensor,
    fake: Tensor,
    pr_k: int | None = 3,
    dc_k: int | None = 5,
    block: int = BLOCK_ROWS,
    real_radii: list[Tensor] | None = None,
) -> dict[str, float]:
    """``precision``/``recall`` (k = ``pr_k``) and ``density``/``coverage`` (k = ``dc_k``) of fake vs real.

    A k of None or <= 0 leaves its pair out. One pass over real x fake blocks serves all four.
    ``real_radii``: ``real_radii_for(real, pr_k, dc_k)`` computed before, since the real side
    stays the same from one evaluation to the next (the real x real pass costs the most).
    """
    _check("real features", real)
    _check("fake features", fake)
    if real.shape[1] != fake.shape[1]:
        raise ValueError(f"real features have dimension {real.shape[1]}, fake ones {fake.shape[1]}")
    pr = pr_k is not None and pr_k > 0
    dc = dc_k is not None and dc_k > 0
    if not (pr or dc):
        return {}
    if real_radii is None:
        real_radii = real_radii_for(real, pr_k, dc_k, block)  # one pass over real x real for both
    real_r = real_radii[0] if pr else None
    real_r_dc = real_radii[-1] if dc else None
    fake_r = kth_neighbour_radii(fake, pr_k, block) if pr else None
    fake_in_real = torch.zeros(len(fake), dtype=torch.bool, device=fake.device)  # precision
    real_in_fake = []  # recall, per real row
    balls_holding = torch.zeros(len(fake), dtype=torch.float64, device=fake.device)  # density
    real_covered = []  # coverage, per real row
    for start, d2 in _squared_distance_blocks(real, fake, block):  # rows: reals, columns: fakes
        stop = start + len(d2)
        if pr:
            fake_in_real |= (d2 <= real_r[start:stop, None]).any(0)
            real_in_fake.append((d2 <= fake_r[None, :]).any(1))
        if dc:
            inside = d2 <= real_r_dc[start:stop, None]
            balls_holding += inside.sum(0)
            real_covered.append(inside.any(1))  # the nearest fake is inside iff any fake is
    out = {}
    if pr:
        out["precision"] = float(fake_in_real.double().mean())
        out["recall"] = float(torch.cat(real_in_fake).double().mean())
    if dc:
        out["density"] = float(balls_holding.mean() / dc_k)
        out["coverage"] = float(torch.cat(real_covered).double().mean())
    return out


def _nearest(x: Tensor, ref: Tensor, block: int = BLOCK_ROWS) -> Tensor:
    return torch.cat([d2.min(1).values for _, d2 in _squared_distance_blocks(x, ref, block)])


def memorisation_share(
    fake: Tensor, train: Tensor, held_out: Tensor, seed: int = 0, block: int = BLOCK_ROWS
) -> float:
    """Share of fakes whose nearest training feature is strictly closer than their nearest held-out one.

    A generator that does not memorise places a fake no nearer to the images it was trained
    on than to unseen images of the same distribution, so with equally many of each the share
    is about 0.5; copies of training images give 1. Nearest-neighbour distances shrink as a set
    grows, so the larger of ``train``/``held_out`` is first subsampled, without replacement and
    by a ``torch.Generator`` seeded ``seed``, to the smaller one's size.
    """
    for name, x in (("fake", fake), ("train", train), ("held_out", held_out)):
        _check(name, x)
        if len(x) == 0:
            raise ValueError(f"memorisation_share needs {name} features, got none")
    n = min(len(train), len(held_out))
    g = torch.Generator().manual_seed(int(seed))
    if len(train) > n:
        train = train[torch.randperm(len(train), generator=g)[:n].to(train.device)]
    if len(held_out) > n:
        held_out = held_out[torch.randperm(len(held_out), generator=g)[:n].to(held_out.device)]
    closer = _nearest(fake, train, block) < _nearest(fake, held_out.to(train.device), block)
    return float(closer.double().mean())
