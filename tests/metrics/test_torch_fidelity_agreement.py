"""End to end against torch-fidelity: the same uint8 images and seed in, the same FID, IS and KID out.

ganforge's side is the callback's path (``FidelityEvaluator.prepare`` on a datamodule,
``evaluate`` on a sampler); torch-fidelity's is ``calculate_metrics`` with input1 = the
generated images and input2 = the real ones, both through one randomly initialised
Inception file. The images are small (Inception resizes them to 299x299 and costs about
0.3-0.5 s an image on one CPU thread; each side extracts every image once), so the real and
generated sets are a few dozen images and KID's subsets and IS's splits are sized to them.

Measured gaps (rel), and where they come from:

- IS: 0 (the same float32 logits, the same shuffle, the same float64 arithmetic).
- Precision/recall (k = 3): 0. torch-fidelity counts closed balls (<=) as ganforge does;
  its float32 distances and ganforge's float64 ones put no generated image on the other
  side of a radius here.
- KID: 1e-7 to 1e-5. Both draw the very same subsets; torch-fidelity builds its kernels in
  float32 (NumPy on its float32 features), ganforge in float64. On float64 features
  the two agree to ~1e-14 (see test_kid.py).
- FID: ~1e-7. The covariances agree to ~1e-14; the gap is sqrt of the eigenvalues of the
  singular product of the two covariances (rank < 2048 with this few samples): the ~2000
  numerically-zero eigenvalues, each ~1e-17, have square roots ~1e-9 whose real parts
  sum to ~1e-6 and differ between ``torch.linalg.eigvals(S_real @ S_fake)`` (torchmetrics)
  and ``np.linalg.eigvals(S_fake @ S_real)`` (torch-fidelity).
"""

from __future__ import annotations

import math
import time

import pytest
import torch
import torch_fidelity
from metrics_stubs import ImageData, StubSampler

from ganforge.metrics.evaluator import FidelityEvaluator
from ganforge.metrics.extractors.inception import InceptionV3Features
from ganforge.metrics.protocol import quantize_uint8

N_REAL, N_FAKE = 20, 16  # unequal, so drawing real and generated indices in the wrong order shows
SEED = 123  # neither ganforge's default (0) nor torch-fidelity's (2020): both must be handed it
IS_SPLITS, KID_SUBSETS, KID_SUBSET_SIZE = 4, 50, 8
BATCH = 64  # one batch per set on both sides: the same convolutions, bit-identical features

TORCH_FIDELITY_KEYS = {
    "fid": "frechet_inception_distance",
    "is_mean": "inception_score_mean",
    "is_std": "inception_score_std",
    "kid_mean": "kernel_inception_distance_mean",
    "kid_std": "kernel_inception_distance_std",
    "precision": "precision",
    "recall": "recall",
}


@pytest.fixture(scope="module")
def inception_file(random_inception_weights, tmp_path_factory):
    """The shared random Inception file, rescaled so that its features and logits do not vanish.

    PyTorch's default init (var 1/(3 fan_in)) shrinks activations layer after layer: its
    2048-d features are ~1e-8, which leaves float32 KID at 0 and IS at 1. Scaling every
    convolution by sqrt(6) gives He's variance 2/fan_in (features ~0.3, varying by ~0.05
    between images). The logits share a large common part w.mean(f), so IS peaks when the
    classifier is scaled by ~10 (logits ~2, varying by ~0.4): IS ~1.07 over 4-image splits.
    """
    state = torch.load(random_inception_weights, weights_only=True)
    for name, value in state.items():
        if name.endswith("conv.weight"):
            state[name] = value * math.sqrt(6)
        elif name == "fc.weight":
            state[name] = value * 10
    path = tmp_path_factory.mktemp("inception-scaled") / "weights-inception-random-scaled.pth"
    torch.save(state, path)
    return path


def smooth_images(n: int, generator: torch.Generator, brightness: float) -> torch.Tensor:
    """(n, 3, 32, 32) uint8: upsampled 4x4 colour fields plus a little pixel noise."""
    low = torch.rand(n, 3, 4, 4, generator=generator)
    x = torch.nn.functional.interpolate(low, size=32, mode="bilinear", align_corners=False)
    x = x * brightness + 0.1 * torch.rand(n, 3, 32, 32, generator=generator)
    return (x.clamp(0, 1) * 255).to(torch.uint8)


def as_generator_output(u8: torch.Tensor) -> torch.Tensor:
    """uint8 -> [-1, 1] floats that ganforge's x * 127.5 + 128, truncated, maps back to the same uint8."""
    return (u8.float() - 127.5) / 127.5


class Images(torch.utils.data.Dataset):
    """uint8 (3, H, W) tensors, what torch-fidelity takes as an input."""

    def __init__(self, images: torch.Tensor) -> None:
        self.images = images

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> torch.Tensor:
        return self.images[i]


@pytest.mark.slow
def test_fid_is_kid_equal_torch_fidelity_end_to_end(inception_file):
    g = torch.Generator().manual_seed(0)
    real, fake = smooth_images(N_REAL, g, 0.8), smooth_images(N_FAKE, g, 1.1)
    for u8 in (real, fake):  # the images torch-fidelity gets are exactly those ganforge's extractor sees
        assert torch.equal(quantize_uint8(as_generator_output(u8)), u8)

    start = time.perf_counter()
    ev = FidelityEvaluator(
        InceptionV3Features(weights=str(inception_file), allow_download=False),
        num_fake=N_FAKE,
        batch_size=BATCH,
        seed=SEED,
        is_splits=IS_SPLITS,
        kid_subsets=KID_SUBSETS,
        kid_subset_size=KID_SUBSET_SIZE,
    )
    ev.prepare(ImageData(as_generator_output(real)), "cpu")
    got = ev.evaluate(StubSampler(as_generator_output(fake), in_order=True))
    ganforge_s = time.perf_counter() - start
    assert ev.protocol()["kid_subset_size"] == KID_SUBSET_SIZE and ev.protocol()["n_real"] == N_REAL

    start = time.perf_counter()
    want = torch_fidelity.calculate_metrics(
        input1=Images(fake),
        input2=Images(real),
        isc=True,
        fid=True,
        kid=True,
        prc=True,
        prc_neighborhood=3,
        feature_extractor="inception-v3-compat",  # prc's default is VGG16; here KID's 2048-d features
        feature_layer_prc="2048",
        feature_extractor_weights_path=str(inception_file),
        rng_seed=SEED,
        isc_splits=IS_SPLITS,
        kid_subsets=KID_SUBSETS,
        kid_subset_size=KID_SUBSET_SIZE,
        batch_size=BATCH,
        cuda=False,
        cache=False,
        save_cpu_ram=True,  # no DataLoader worker processes
        verbose=False,
    )
    torch_fidelity_s = time.perf_counter() - start
    want = {ours: want[theirs] for ours, theirs in TORCH_FIDELITY_KEYS.items()}
    print(f"ganforge {ganforge_s:.1f} s, torch-fidelity {torch_fidelity_s:.1f} s")
    for key in TORCH_FIDELITY_KEYS:
        print(f"{key}: ganforge {got[key]:.10g} torch-fidelity {want[key]:.10g}")

    # numbers far from 0 and spread over subsets/splits, so the relative checks mean something
    assert want["fid"] > 1 and want["is_mean"] > 1.02 and want["kid_mean"] > 1e-3
    assert want["is_std"] > 1e-3 and want["kid_std"] > 1e-4
    assert {"density", "coverage"} <= set(got)  # torch-fidelity has no density/coverage
    assert 0 < want["precision"] < 1 or 0 < want["recall"] < 1
    assert {key: got[key] for key in want} == pytest.approx(want, rel=1e-4)
