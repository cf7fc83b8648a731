"""FID, IS, KID and precision/recall/density/coverage in torchmetrics metrics, fed features once per batch.

torchmetrics keeps the states and synchronises them across DDP ranks (sums for
FID, gathered features for IS and KID). Its metrics would each run the extractor
on every batch; here one pass gives features and logits, and the metrics receive
them through a pass-through "feature network".

What is computed matches torch-fidelity (the reference of DESIGN.md) on the same
features and seed, with torch-fidelity's input1 = the generated images and input2 = the
real ones (tests/metrics/test_torch_fidelity_agreement.py, end to end): FID from float64
sums as torchmetrics does (Heusel et al. 2017); IS in float64 over splits at
i*N//splits after a ``RandomState(seed).permutation`` shuffle, with the population
standard deviation (Salimans et al. 2016; torchmetrics uses ``torch.chunk`` and the
sample std); KID as the unbiased MMD^2 with the cubic polynomial kernel over subsets
drawn without replacement by one ``RandomState(seed)``, per subset the generated
indices first and then the real ones (Binkowski et al. 2018), in float64; when the
subsets cover much of the data the kernels are built once over all samples and each
subset's sums read from the same draws.

Precision/recall (Kynkäänniemi et al. 2019) and density/coverage (Naeem et al. 2020)
are computed (``ganforge.metrics.manifold``) inside KID's ``compute``, on the very real and
generated features KID holds: torchmetrics gathers those across ranks for that one call
and un-gathers them after it, so one all-gather serves all six numbers.
"""

from __future__ import annotations

import warnings

import numpy as np
import torch
from torch import Tensor, nn
from torchmetrics.image.fid import FrechetInceptionDistance
from torchmetrics.image.inception import InceptionScore
from torchmetrics.image.kid import KernelInceptionDistance, poly_mmd
from torchmetrics.utilities.data import dim_zero_cat

from ganforge.metrics.manifold import precision_recall_density_coverage, real_radii_for


class GivenFeatures(nn.Module):
    """Stands in for torchmetrics' feature network: the input already is the features."""

    def __init__(self, num_features: int) -> None:
        super().__init__()
        self.num_features = int(num_features)

    def forward(self, x: Tensor) -> Tensor:
        return x


class ReferenceInceptionScore(InceptionScore):
    """torchmetrics' states and synchronisation; torch-fidelity's splits, shuffle and std."""

    def __init__(self, splits: int = 10, seed: int = 0, **kwargs) -> None:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*will save all extracted features.*")
            super().__init__(feature=GivenFeatures(0), splits=splits, **kwargs)
        self.seed = int(seed)

    def compute(self) -> tuple[Tensor, Tensor]:
        logits = dim_zero_cat(self.features).double()
        n = len(logits)
        logits = logits[
            torch.as_tensor(np.random.RandomState(self.seed).permutation(n), device=logits.device)
        ]
        p, log_p = logits.softmax(dim=1), logits.log_softmax(dim=1)
        scores = []
        for i in range(self.splits):
            lo, hi = i * n // self.splits, (i + 1) * n // self.splits
            p_chunk, log_p_chunk = p[lo:hi], log_p[lo:hi]
            marginal = p_chunk.mean(dim=0, keepdim=True)
            scores.append((p_chunk * (log_p_chunk - marginal.log())).sum(dim=1).mean().exp())
        scores_t = torch.stack(scores)
        return scores_t.mean(), scores_t.std(unbiased=False)


class _PolyKernel:
    """k(x, y) = (gamma x.y + coef)^degree, gamma = 1/d by default (torchmetrics' and torch-fidelity's)."""

    def __init__(self, degree: int, gamma: float | None, coef: float, dim: int) -> None:
        self.degree, self.coef = degree, coef
        self.gamma = 1.0 / dim if gamma is None else gamma

    def __call__(self, a: Tensor, b: Tensor) -> Tensor:
        return (a @ b.T * self.gamma + self.coef) ** self.degree

    def diagonal(self, a: Tensor) -> Tensor:
        return ((a * a).sum(1) * self.gamma + self.coef) ** self.degree


def _weighted_kernel_sums(a: Tensor, b: Tensor, wa: Tensor, wb: Tensor, kernel: _PolyKernel) -> Tensor:
    """wa[s]^T K(a, b) wb[s] for every subset s, building K a block of rows at a time."""
    total = a.new_zeros(len(wa))
    for i in range(0, len(a), 2048):
        total += ((wa[:, i : i + 2048] @ kernel(a[i : i + 2048], b)) * wb).sum(1)
    return total


def subset_mmds_from_full_kernels(
    real: Tensor, fake: Tensor, idx_r: Tensor, idx_f: Tensor, kernel: _PolyKernel
) -> Tensor:
    """The unbiased MMD^2 of every subset (rows of idx_r, idx_f) from kernels over all samples.

    A subset's kernel sum is w^T K w with w its 0/1 indicator, so each kernel is built
    once instead of once per subset: the numbers of torchmetrics' per-subset ``poly_mmd``,
    many times faster when the subsets cover much of the data.
    """
    m = idx_r.shape[1]
    wr = real.new_zeros(len(idx_r), len(real)).scatter_(1, idx_r, 1.0)
    wf = fake.new_zeros(len(idx_f), len(fake)).scatter_(1, idx_f, 1.0)
    kxx = _weighted_kernel_sums(real, real, wr, wr, kernel) - wr @ kernel.diagonal(real)
    kyy = _weighted_kernel_sums(fake, fake, wf, wf, kernel) - wf @ kernel.diagonal(fake)
    kxy = _weighted_kernel_sums(real, fake, wr, wf, kernel)
    return (kxx + kyy) / (m * (m - 1)) - 2 * kxy / m**2


class ReferenceKernelInceptionDistance(KernelInceptionDistance):
    """torchmetrics' states and synchronisation; subsets drawn as torch-fidelity draws them.

    The subset size is capped by the samples at hand (never an error mid-training, where
    torch-fidelity raises); ``last_subset_size`` says what was used.
    """

    def __init__(self, subsets: int = 100, subset_size: int = 1000, seed: int = 0, **kwargs) -> None:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*will save all extracted features.*")
            super().__init__(feature=GivenFeatures(0), subsets=subsets, subset_size=subset_size, **kwargs)
        self.seed = int(seed)
        self.last_subset_size = 0
        self.full_kernels: bool | None = None  # None: whichever costs fewer kernel entries

    def compute(self) -> tuple[Tensor, Tensor]:
        return self.kid_of(dim_zero_cat(self.real_features), dim_zero_cat(self.fake_features))

    def kid_of(self, real: Tensor, fake: Tensor) -> tuple[Tensor, Tensor]:
        """Mean and std of the subset MMDs of these (already gathered) features."""
        real, fake = real.double(), fake.double()
        m = min(self.subset_size, len(real), len(fake))
        if m < 2:
            raise ValueError(f"KID needs at least 2 real and 2 fake samples, got {len(real)} and {len(fake)}")
        self.last_subset_size = m
        # torch-fidelity's order with input1 = generated, input2 = real: per subset, the
        # generated indices first, then the real ones, from one RandomState(seed)
        rng = np.random.RandomState(self.seed)
        draws = []  # (real indices, generated indices) of each subset
        for _ in range(self.subsets):
            fake_idx = rng.choice(len(fake), m, replace=False)
            real_idx = rng.choice(len(real), m, replace=False)
            draws.append((real_idx, fake_idx))
        n_r, n_f, d = len(real), len(fake), real.shape[1]
        full = self.full_kernels
        if (
            full is None
        ):  # multiply-adds: all pairs once (+ the subset sums), or three m x m blocks per subset
            full = (n_r * n_r + n_f * n_f + n_r * n_f) * (d + self.subsets) <= 3 * self.subsets * m * m * d
        if full:
            kernel = _PolyKernel(self.degree, self.gamma, self.coef, d)
            idx_r = torch.as_tensor(np.stack([r for r, _ in draws]), device=real.device)
            idx_f = torch.as_tensor(np.stack([f for _, f in draws]), device=fake.device)
            mmd = subset_mmds_from_full_kernels(real, fake, idx_r, idx_f, kernel)
        else:
            mmds = []
            for r, f in draws:
                r_sub = real[torch.as_tensor(r, device=real.device)]
                f_sub = fake[torch.as_tensor(f, device=fake.device)]
                mmds.append(poly_mmd(r_sub, f_sub, self.degree, self.gamma, self.coef))
            mmd = torch.stack(mmds)
        return mmd.mean(), mmd.std(unbiased=False)


class KIDAndManifold(ReferenceKernelInceptionDistance):
    """KID, and precision/recall (k = ``pr_k``) and density/coverage (k = ``dc_k``) on the same features.

    ``compute`` returns a dict: ``kid_mean``, ``kid_std`` and, for each k that is > 0,
    ``precision``, ``recall`` / ``density``, ``coverage``. The real features are KID's
    (the first ``kid_max_real`` real images).
    """

    def __init__(self, pr_k: int | None = 3, dc_k: int | None = 5, **kwargs) -> None:
        super().__init__(**kwargs)
        self.pr_k = int(pr_k) if pr_k and int(pr_k) > 0 else None
        self.dc_k = int(dc_k) if dc_k and int(dc_k) > 0 else None
        # the reals' radii, from the first evaluation until the real features are loaded again
        self.real_radii: list[Tensor] | None = None

    def compute(self) -> dict[str, Tensor]:  # type: ignore[override]
        real, fake = dim_zero_cat(self.real_features), dim_zero_cat(self.fake_features)
        kid_mean, kid_std = self.kid_of(real, fake)
        out = {"kid_mean": kid_mean, "kid_std": kid_std}
        for k in (self.pr_k, self.dc_k):
            if k is not None and not k < min(len(real), len(fake)):
                raise ValueError(
                    f"precision/recall/density/coverage with k={k} need more than k real and k generated "
                    f"features, got {len(real)} and {len(fake)}"
                )
        stale = self.real_radii is None or len(self.real_radii[0]) != len(real)
        if (self.pr_k or self.dc_k) and stale:
            self.real_radii = real_radii_for(real, self.pr_k, self.dc_k)
        radii = [r.to(real.device) for r in self.real_radii] if self.real_radii else None
        manifold = precision_recall_density_coverage(real, fake, self.pr_k, self.dc_k, real_radii=radii)
        return out | {name: torch.tensor(value, dtype=torch.float64) for name, value in manifold.items()}


def _collapse(metric: nn.Module, *states: str) -> None:
    """One tensor per list state: one all-gather per state, and ranks' samples stay in rank order."""
    for name in states:
        value = getattr(metric, name)
        if isinstance(value, list) and len(value) > 1:
            setattr(metric, name, [dim_zero_cat(value)])


class FidelityScores(nn.Module):
    """FID, IS, KID (+ P/R/D/C) over one extractor's outputs; real statistics are loaded, not streamed.

    ``pr_k`` / ``dc_k``: k of precision/recall and of density/coverage (None or <= 0: off).
    """

    def __init__(
        self,
        num_features: int,
        with_inception_score: bool = True,
        is_splits: int = 10,
        kid_subsets: int = 100,
        kid_subset_size: int = 1000,
        seed: int = 0,
        pr_k: int | None = None,
        dc_k: int | None = None,
    ) -> None:
        super().__init__()
        self.fid = FrechetInceptionDistance(feature=GivenFeatures(num_features), reset_real_features=False)
        self.kid = KIDAndManifold(
            pr_k=pr_k,
            dc_k=dc_k,
            subsets=kid_subsets,
            subset_size=kid_subset_size,
            seed=seed,
            reset_real_features=False,
        )
        self.inception_score = (
            ReferenceInceptionScore(splits=is_splits, seed=seed) if with_inception_score else None
        )

    def load_real(
        self,
        feature_sum: Tensor,
        outer_sum: Tensor,
        count: int,
        kid_features: Tensor,
        rank: int = 0,
        world_size: int = 1,
    ) -> None:
        """Put the real statistics in so that the sum over ranks is the real set counted once.

        FID's sums go to rank 0 only (the others hold zeros); KID's real features are
        split in order, one slice per rank, and gathered back whole by torchmetrics.
        """
        device = self.fid.real_features_sum.device
        if rank == 0:
            self.fid.real_features_sum = feature_sum.to(device, torch.float64).clone()
            self.fid.real_features_cov_sum = outer_sum.to(device, torch.float64).clone()
            self.fid.real_features_num_samples = torch.tensor(int(count), device=device)
        else:
            self.fid.real_features_sum = torch.zeros_like(self.fid.real_features_sum)
            self.fid.real_features_cov_sum = torch.zeros_like(self.fid.real_features_cov_sum)
            self.fid.real_features_num_samples = torch.tensor(0, device=device)
        self.kid.real_features = [torch.tensor_split(kid_features, world_size)[rank].to(device)]
        if hasattr(self.kid, "real_radii"):
            self.kid.real_radii = None  # new real features: their radii are computed again

    def reset_fake(self) -> None:
        for metric in self.metrics():
            metric.reset()  # real states survive: reset_real_features=False

    def metrics(self) -> list[nn.Module]:
        return [m for m in (self.fid, self.kid, self.inception_score) if m is not None]

    def update(self, features: Tensor, logits: Tensor | None = None) -> None:
        self.fid.update(features.double(), real=False)
        self.kid.update(features, real=False)
        if self.inception_score is not None:
            if logits is None:
                raise ValueError("the Inception Score needs logits; this extractor gave none")
            self.inception_score.update(logits)

    def compute(self) -> dict[str, float]:
        _collapse(self.kid, "real_features", "fake_features")
        out = {"fid": float(self.fid.compute())}
        if self.inception_score is not None:
            _collapse(self.inception_score, "features")
            is_mean, is_std = self.inception_score.compute()
            out |= {"is_mean": float(is_mean), "is_std": float(is_std)}
        out |= {name: float(value) for name, value in self.kid.compute().items()}
        return out
