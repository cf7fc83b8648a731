"""Metrics of class-conditional generators: intra-class FID and the digits classifier's class accuracy.

- Intra-class FID (Miyato & Koyama 2018, "cGANs with Projection Discriminator", sec. 4.1):
  the FID between the fakes generated with label c and the real images of class c,
  averaged over the classes; the per-class values go to the record. The Fréchet distance
  is torchmetrics' (``_compute_fid``, the helper its FID uses), on covariances formed from
  float64 sums exactly as its ``FrechetInceptionDistance.compute`` forms them.
- Class accuracy: the share of fakes that a classifier assigns to the class they were
  generated for (as in the conditional-GAN literature's "classification accuracy"); only
  with the digits classifier on data whose labels are its 10 digit classes.

Real per-class sums come with the cached real statistics and are the same on every rank,
so they are plain tensors; the fake sums are torchmetrics states summed over ranks
(``dist_reduce_fx="sum"``). They take C x D x D float64 (10 classes of Inception's 2048-d
features: 336 MB), so they are built only for conditional models.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn
from torchmetrics import Metric
from torchmetrics.classification import MulticlassAccuracy
from torchmetrics.image.fid import _compute_fid

# Datamodules whose labels are the digits 0-9 that the digits classifier was trained on, by
# exact class name: ganforge.metrics does not import the data room, and isinstance would let
# in subclasses with other labels. MNIST is left out: its labels are digits too, but the
# classifier's 99.6 % was measured on scikit-learn's digits only. A datamodule can say so
# itself with ``label_kind = "digits"`` (checked first), as DigitsDataModule does.
DIGIT_LABEL_DATAMODULES = frozenset({"DigitsDataModule"})


def labels_are_digits(datamodule) -> bool:
    kind = getattr(datamodule, "label_kind", None)
    if kind is not None:
        return str(kind) == "digits"
    return type(datamodule).__name__ in DIGIT_LABEL_DATAMODULES


def labels_of_real_samples(datamodule, n: int | None, num_classes: int) -> Tensor:
    """The labels of ``datamodule.real_samples(n)`` (the first n training samples, in dataset order).

    A datamodule's own ``real_labels(n)`` when it has one; none does yet (asked of the data
    room), so otherwise the training set's labels, read after ``real_samples`` set the data
    up: ``train_set.y`` (``TensorDataset``) or ``train_set.targets`` (image files).
    """
    own = getattr(datamodule, "real_labels", None)
    if own is not None:
        y = own(n)
    else:
        train_set = getattr(datamodule, "train_set", None)
        y = getattr(train_set, "y", None)
        y = getattr(train_set, "targets", None) if y is None else y
        if y is None:
            raise ValueError(
                f"intra-class FID needs the labels of the real images: {type(datamodule).__name__} "
                "has no real_labels(n), train_set.y or train_set.targets (or use an unconditional model)"
            )
        y = y if n is None else y[:n]
    y = torch.as_tensor(y).long()
    if len(y) and (y.min() < 0 or y.max() >= num_classes):
        raise ValueError(
            f"intra-class FID needs labels in 0..{num_classes - 1} for every real image; "
            f"{type(datamodule).__name__} gives {int(y.min())}..{int(y.max())} (-1: unlabelled)"
        )
    return y


def class_sums(features: Tensor, labels: Tensor, num_classes: int) -> tuple[Tensor, Tensor, Tensor]:
    """Per-class float64 feature sums (C, D), sums of outer products (C, D, D) and counts (C,)."""
    f = features.double()
    d = f.shape[1]
    total = f.new_zeros(num_classes, d).index_add_(0, labels, f)
    outer = f.new_zeros(num_classes, d, d)
    for c in labels.unique().tolist():  # one D x D product per class present
        fc = f[labels == c]
        outer[c] = fc.T @ fc
    counts = torch.bincount(labels, minlength=num_classes).to(f.device)
    return total, outer, counts


def _mean_cov(total: Tensor, outer: Tensor, n: Tensor) -> tuple[Tensor, Tensor]:
    mean = (total / n).unsqueeze(0)
    return mean.squeeze(0), (outer - n * mean.T @ mean) / (n - 1)  # as torchmetrics' FID


class IntraClassFID(Metric):
    """FID per class of the fakes against real per-class sums given by ``load_real``.

    A class with fewer than 2 real or 2 fake samples has no covariance: its FID is NaN.
    """

    full_state_update = False

    def __init__(self, num_classes: int, num_features: int, **kwargs) -> None:
        super().__init__(**kwargs)
        self.num_classes, c, d = int(num_classes), int(num_classes), int(num_features)
        self.add_state("fake_sum", torch.zeros(c, d, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("fake_outer", torch.zeros(c, d, d, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("fake_count", torch.zeros(c, dtype=torch.long), dist_reduce_fx="sum")
        self.real: tuple[Tensor, Tensor, Tensor] | None = None

    def load_real(self, total: Tensor, outer: Tensor, counts: Tensor) -> None:
        device = self.fake_sum.device
        self.real = (total.to(device, torch.float64), outer.to(device, torch.float64), counts.to(device))

    def update(self, features: Tensor, labels: Tensor) -> None:
        total, outer, counts = class_sums(features, labels.to(features.device).long(), self.num_classes)
        self.fake_sum += total
        self.fake_outer += outer
        self.fake_count += counts

    def compute(self) -> dict[str, Tensor]:
        """``fid``: (C,) per class; ``n_fake``: (C,) fakes per class, over all ranks."""
        if self.real is None:
            raise RuntimeError("IntraClassFID: load_real before compute")
        real_sum, real_outer, real_count = self.real
        values = []
        for c in range(self.num_classes):
            if real_count[c] < 2 or self.fake_count[c] < 2:
                values.append(torch.tensor(math.nan, dtype=torch.float64, device=self.fake_sum.device))
                continue
            mu_r, cov_r = _mean_cov(real_sum[c], real_outer[c], real_count[c])
            mu_f, cov_f = _mean_cov(self.fake_sum[c], self.fake_outer[c], self.fake_count[c])
            values.append(_compute_fid(mu_r, cov_r, mu_f, cov_f))  # torchmetrics' argument order
        return {"fid": torch.stack(values), "n_fake": self.fake_count.clone()}


class ConditionalScores(nn.Module):
    """Intra-class FID and (optionally) class accuracy over one evaluation's labelled fakes."""

    def __init__(self, num_classes: int, num_features: int, class_accuracy: bool) -> None:
        super().__init__()
        self.num_classes = int(num_classes)
        self.intra_fid = IntraClassFID(num_classes, num_features)
        # micro average: correct fakes over all fakes (counts summed over ranks)
        self.accuracy = (
            MulticlassAccuracy(num_classes=num_classes, average="micro") if class_accuracy else None
        )
        self.per_class: dict[str, list] = {}

    def reset(self) -> None:
        self.intra_fid.reset()  # the loaded real sums are not states: they survive
        if self.accuracy is not None:
            self.accuracy.reset()

    def update(self, features: Tensor, logits: Tensor | None, labels: Tensor) -> None:
        self.intra_fid.update(features, labels)
        if self.accuracy is not None:
            if logits is None:
                raise ValueError("class accuracy needs the classifier's logits; this extractor gave none")
            self.accuracy.update(logits, labels.to(logits.device).long())

    def compute(self) -> dict[str, float]:
        intra = self.intra_fid.compute()
        values = [float(v) for v in intra["fid"].cpu()]
        self.per_class = {
            "intra_fid": [None if math.isnan(v) else v for v in values],  # JSON has no NaN
            "n_fake": [int(n) for n in intra["n_fake"].tolist()],
            "n_real": [int(n) for n in self.intra_fid.real[2].tolist()],
        }
        out = {"intra_fid": float(intra["fid"].mean())}  # NaN when a class had too few samples
        if self.accuracy is not None:
            out["class_accuracy"] = float(self.accuracy.compute())
        return out
