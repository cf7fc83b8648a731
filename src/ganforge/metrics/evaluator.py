"""From a generator and a datamodule to FID, IS, KID, P/R/D/C (and per-class metrics) under one protocol.

Real statistics come from ``prepare`` (cached, see ``real_stats``). ``evaluate``
draws this rank's share of ``num_fake`` images, ceil(num_fake / world_size), from a
CPU ``torch.Generator`` seeded ``seed + rank`` (stylegan2-ada offsets seeds by rank
the same way), so the numbers are reproducible and the training noise stream is
left alone; torchmetrics then synchronises the states across ranks. The shuffles
of IS and KID use NumPy generators seeded ``seed``.

Precision/recall and density/coverage use KID's features (``scores.KIDAndManifold``).
A conditional sampler (``num_classes`` > 0) is sampled as ``GAN.sample(n, labels=None,
generator=g)`` samples it, latents then uniform labels, both from ``g`` (see ``_draw``),
so FID/IS/KID stay those of that draw, and the labels are known for intra-class FID and
class accuracy (``ganforge.metrics.conditional``).
"""

from __future__ import annotations

import math
import os
from typing import Protocol

import torch
from torch import Tensor, nn

import ganforge
from ganforge.metrics.conditional import ConditionalScores, labels_are_digits, labels_of_real_samples
from ganforge.metrics.extractors import (
    extractor_in_channels,
    extractor_name,
    features_and_logits,
    weights_digest,
)
from ganforge.metrics.extractors.digits import DigitsCNN, DigitsFeatures
from ganforge.metrics.protocol import PROTOCOL_VERSION, to_extractor_input
from ganforge.metrics.real_stats import RealStats, make_key, prepare_real_stats
from ganforge.metrics.scores import FidelityScores

QUANTISATION = "uint8 = clamp(x * 127.5 + 128, 0, 255), truncated"


class Sampler(Protocol):
    device: torch.device

    def sample(
        self, n: int, labels: Tensor | None = None, generator: torch.Generator | None = None
    ) -> Tensor: ...


def data_shape(datamodule) -> tuple[int, ...]:
    shape = getattr(datamodule, "data_shape", None)
    if shape is None:
        shape = (datamodule.channels, datamodule.image_size, datamodule.image_size)
    return tuple(int(s) for s in shape)


def data_fingerprint(datamodule) -> str:
    return str(datamodule.fingerprint())


def _draw(sampler: Sampler, n: int, g: torch.Generator, num_classes: int) -> tuple[Tensor, Tensor | None]:
    """n images and the labels they were generated for (None: unconditional), from ``g``.

    ``GAN.sample(n, labels=None, generator=g)`` draws latents from g, then uniform labels
    from g; a sampler with ``sample_latent`` is driven through the same two draws in that
    order (the latents passed as ``z``), so its images are bit for bit those of that call.
    Any other conditional sampler gets uniform labels drawn from g first.
    """
    if not num_classes:
        return sampler.sample(n, labels=None, generator=g), None
    if hasattr(sampler, "sample_latent"):
        z = sampler.sample_latent(n, generator=g)
        labels = torch.randint(num_classes, (n,), generator=g)
        return sampler.sample(n, labels=labels, z=z), labels
    labels = torch.randint(num_classes, (n,), generator=g)
    return sampler.sample(n, labels=labels, generator=g), labels


def sampler_classes(sampler) -> int:
    return int(getattr(sampler, "num_classes", 0) or 0)


class FidelityEvaluator:
    """FID, IS, KID, precision/recall, density/coverage of a sampler against a datamodule's images.

    Args:
        extractor: features (and logits) from uint8 images; see ``ganforge.metrics.extractors``.
        num_fake: generated images per evaluation, over all ranks.
        num_real: real images for the statistics (None: every training image).
        batch_size: images per generator call and per extractor pass.
        seed: latents of rank r come from ``seed + r``; IS and KID shuffles from ``seed``.
        is_splits: IS is the mean (and std) over this many splits.
        kid_subsets / kid_subset_size: KID is the mean (and std) of the MMD over subsets
            of this size (capped by the samples at hand; torch-fidelity raises instead).
        kid_max_real: real features kept for KID (the first ones, in dataset order); KID
            equals torch-fidelity's on the same images only when n_real <= kid_max_real.
        cache_dir: where real statistics are cached (None: computed every fit).
        split: the images ``real_samples`` gives; datamodules expose their training set.
        pr_k: k of improved precision and recall (Kynkäänniemi et al. 2019); None or <= 0: off.
        dc_k: k of density and coverage (Naeem et al. 2020); None or <= 0: off. Both use
            KID's real features (the first ``kid_max_real``) and every generated one.

    For conditional samplers (``num_classes`` > 0, prepared with that many classes) also
    ``intra_fid`` (per class in ``per_class``) and, with the digits classifier on data
    labelled with its digits, ``class_accuracy``.
    """

    def __init__(
        self,
        extractor: nn.Module,
        num_fake: int = 2000,
        num_real: int | None = None,
        batch_size: int = 500,
        seed: int = 0,
        is_splits: int = 10,
        kid_subsets: int = 100,
        kid_subset_size: int = 1000,
        kid_max_real: int = 10000,
        cache_dir: str | os.PathLike | None = None,
        split: str = "train",
        pr_k: int | None = 3,
        dc_k: int | None = 5,
    ) -> None:
        for name, value in (
            ("num_fake", num_fake),
            ("batch_size", batch_size),
            ("kid_max_real", kid_max_real),
        ):
            if int(value) < 1:
                raise ValueError(f"metrics.{name} must be a positive integer, got {value}")
        if split != "train":
            raise ValueError(
                f"metrics.split={split!r}: datamodules give their training images only (split=train)"
            )
        if num_real is not None and int(num_real) < 2:
            raise ValueError(f"metrics.num_real must be >= 2 or null (all), got {num_real}")
        self.extractor = extractor.eval().requires_grad_(False)
        self.num_fake, self.num_real = int(num_fake), None if num_real is None else int(num_real)
        self.batch_size, self.seed = int(batch_size), int(seed)
        self.is_splits, self.kid_subsets, self.kid_subset_size = (
            int(is_splits),
            int(kid_subsets),
            int(kid_subset_size),
        )
        self.kid_max_real = int(kid_max_real)
        self.cache_dir, self.split = cache_dir, split
        self.pr_k = int(pr_k) if pr_k is not None and int(pr_k) > 0 else None
        self.dc_k = int(dc_k) if dc_k is not None and int(dc_k) > 0 else None
        self._largest_k = max(self.pr_k or 0, self.dc_k or 0)
        if self._largest_k >= self.num_fake:  # a k-th nearest neighbour among the others
            raise ValueError(
                f"metrics.pr_k / metrics.dc_k must be below metrics.num_fake ({self.num_fake}), "
                f"got {pr_k} / {dc_k}"
            )
        num_features = getattr(extractor, "num_features", None)
        if num_features is None:  # probe with one mid-gray image, as torchmetrics would
            probe = torch.full((1, extractor_in_channels(extractor), 32, 32), 128, dtype=torch.uint8)
            with torch.no_grad():
                num_features = features_and_logits(extractor, probe)[0].shape[-1]
        self.num_features = int(num_features)
        self.scores = FidelityScores(
            self.num_features,
            with_inception_score=hasattr(extractor, "features_and_logits"),
            is_splits=self.is_splits,
            kid_subsets=self.kid_subsets,
            kid_subset_size=self.kid_subset_size,
            seed=self.seed,
            pr_k=self.pr_k,
            dc_k=self.dc_k,
        )
        self.conditional: ConditionalScores | None = None
        self.real: RealStats | None = None
        self.subset: dict | None = None
        self.shape: tuple[int, ...] | None = None
        self.n_fake = 0
        self.per_class: dict[str, list] = {}  # per-class values of the last conditional evaluation

    # ------------------------------------------------------------------ real side
    def prepare(
        self,
        datamodule,
        device: torch.device | str,
        rank: int = 0,
        world_size: int = 1,
        barrier=None,
        num_classes: int | None = None,
    ) -> RealStats:
        """Load (or compute and cache) the real statistics and move everything to ``device``.

        ``num_classes``: classes of the model to be evaluated, for per-class real statistics
        (0: none; None: the datamodule's ``num_classes``). The callback passes the model's.
        """
        device = torch.device(device)
        if num_classes is None:
            num_classes = getattr(datamodule, "num_classes", 0)
        num_classes = int(num_classes or 0)
        self.extractor.to(device)
        self.scores.to(device)
        self.shape = data_shape(datamodule)
        self.subset = getattr(datamodule, "subset_description", None)  # data.subset, when set
        key = make_key(
            data_fingerprint(datamodule),
            self.split,
            self.shape,
            self.num_real,
            self.extractor,
            self.kid_max_real,
            num_classes=num_classes,
        )
        self.real = prepare_real_stats(
            datamodule.real_samples,
            key,
            self.extractor,
            cache_dir=self.cache_dir,
            batch_size=self.batch_size,
            kid_max_real=self.kid_max_real,
            device=device,
            rank=rank,
            barrier=barrier,
            real_labels=lambda n: labels_of_real_samples(datamodule, n, num_classes),
        )
        r = self.real
        if self._largest_k >= len(r.kid_features):
            raise ValueError(
                f"metrics.pr_k / metrics.dc_k must be below the {len(r.kid_features)} real features "
                f"they use (at most kid_max_real), got {self.pr_k} / {self.dc_k}"
            )
        self.scores.load_real(r.feature_sum, r.outer_sum, r.count, r.kid_features, rank, world_size)
        self.conditional = None
        if num_classes:
            # the digits classifier's logits are the digits 0-9: they say which class a fake is
            # only where the data's labels are those digits
            accuracy = (
                isinstance(self.extractor, DigitsFeatures)
                and num_classes == DigitsCNN.num_classes
                and labels_are_digits(datamodule)
            )
            self.conditional = ConditionalScores(num_classes, self.num_features, accuracy).to(device)
            self.conditional.intra_fid.load_real(r.class_feature_sum, r.class_outer_sum, r.class_count)
        return r

    # ------------------------------------------------------------------ fake side
    @torch.no_grad()
    def update(self, images: Tensor, labels: Tensor | None = None) -> None:
        """Add generated images (float, [-1, 1]) to this rank's fake statistics; ``labels``: their classes."""
        x = to_extractor_input(images.to(self.scores.fid.device), extractor_in_channels(self.extractor))
        features, logits = features_and_logits(self.extractor, x)
        logits = None if logits is None else logits.float()
        self.scores.update(features.float(), logits)
        if labels is not None and self.conditional is not None:
            self.conditional.update(features.float(), logits, labels)

    @torch.no_grad()
    def evaluate(self, sampler: Sampler, rank: int = 0, world_size: int = 1) -> dict[str, float]:
        """This rank's share of generated images in, the synchronised metrics out (same on every rank)."""
        if self.real is None:
            raise RuntimeError("call prepare(datamodule, device) before evaluate()")
        num_classes = sampler_classes(sampler)
        prepared = 0 if self.conditional is None else self.conditional.num_classes
        if num_classes and num_classes != prepared:
            raise ValueError(
                f"the sampler is conditional on {num_classes} classes but the real statistics were "
                f"prepared for {prepared}: call prepare(datamodule, device, num_classes={num_classes})"
            )
        self.reset_fake()
        share = math.ceil(self.num_fake / world_size)
        g = torch.Generator().manual_seed(self.seed + rank)
        for start in range(0, share, self.batch_size):
            self.update(*_draw(sampler, min(self.batch_size, share - start), g, num_classes))
        self.n_fake = share * world_size
        return self.compute(conditional=bool(num_classes))

    def reset_fake(self) -> None:
        self.scores.reset_fake()
        if self.conditional is not None:
            self.conditional.reset()

    def compute(self, conditional: bool = False) -> dict[str, float]:
        """The synchronised metrics; with ``conditional`` also the per-class ones (labelled updates)."""
        results = self.scores.compute()
        self.per_class = {}
        if conditional and self.conditional is not None:
            results |= self.conditional.compute()
            self.per_class = dict(self.conditional.per_class)
        self.reset_fake()  # the gathered features are not kept between evaluations
        return results

    # ------------------------------------------------------------------ record
    def protocol(self) -> dict:
        """Everything a number depends on, for metrics.jsonl and metrics.json."""
        return {
            "extractor": extractor_name(self.extractor),
            "extractor_weights": weights_digest(self.extractor),
            "n_real": None if self.real is None else self.real.count,
            "n_fake": self.n_fake,
            "split": self.split,
            "resolution": list(self.shape) if self.shape else None,
            "subset": self.subset,
            "seed": self.seed,
            "quantisation": QUANTISATION,
            "channels": "gray repeated to RGB" if extractor_in_channels(self.extractor) == 3 else "as is",
            "resize": getattr(self.extractor, "resize", "by the extractor"),
            "is_splits": self.is_splits,
            "kid_subsets": self.kid_subsets,
            "kid_subset_size": self.scores.kid.last_subset_size or self.kid_subset_size,
            "kid_n_real": None if self.real is None else len(self.real.kid_features),
            # precision/recall and density/coverage: KID's real features, every generated one
            "pr_k": self.pr_k,
            "dc_k": self.dc_k,
            "prdc_n_real": None if self.real is None else len(self.real.kid_features),
            "prdc_ball": "inside when distance <= the k-th nearest-neighbour distance (self excluded)",
            **self._conditional_protocol(),
            "protocol": PROTOCOL_VERSION,
            "ganforge": ganforge.__version__,
        }

    def details(self) -> dict:
        """What the last evaluation gave beyond scalars: ``per_class`` lists (conditional models)."""
        return {"per_class": dict(self.per_class)} if self.per_class else {}

    def _conditional_protocol(self) -> dict:
        if self.conditional is None:
            return {}
        return {
            "num_classes": self.conditional.num_classes,
            "labels": "uniform from the seeded generator, after the latents (as GAN.sample draws them)",
            "intra_fid_real": "every real image of the class (of the n_real)",
            "class_accuracy_classifier": (
                extractor_name(self.extractor) if self.conditional.accuracy is not None else None
            ),
        }
