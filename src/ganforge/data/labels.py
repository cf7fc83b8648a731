"""Checks that the labels a dataset serves agree with the ``num_classes`` it declares.

The model configs read ``${data.num_classes}``: a conditional net built for K classes
must meet labels 0..K-1, every one of them present. A mismatch is cheap to see when
the labels are loaded and expensive to discover as an index error (or a class row of
noise in the sample grid) mid-run.
"""

from __future__ import annotations

import torch
from torch import Tensor


def check_labels(y: Tensor, num_classes: int, dataset: str, hint: str = "") -> None:
    """Raise ValueError, saying what to set, unless ``y`` covers exactly ``range(num_classes)``.

    ``hint`` is appended to the error for unlabelled data (how this dataset gets labels).
    """
    if num_classes == 0:
        return  # unconditional: labels, if any, are ignored
    unlabelled = int((y < 0).sum())
    if unlabelled == len(y):
        raise ValueError(
            f"data.num_classes={num_classes} asks for class labels, but {dataset} has none. "
            "Train unconditionally (data.num_classes=0 with an unconditional model such as model=dcgan)"
            + hint
        )
    if unlabelled:
        raise ValueError(f"{dataset}: {unlabelled} of {len(y)} samples have no label (-1)")
    present = torch.unique(y).tolist()
    found = len(present)
    if present[-1] >= num_classes:
        raise ValueError(
            f"data.num_classes={num_classes}, but {dataset} has labels up to {present[-1]} "
            f"({found} classes present); set data.num_classes={present[-1] + 1}"
        )
    if found < num_classes:
        missing = sorted(set(range(num_classes)) - set(present))
        shown = ", ".join(map(str, missing[:10])) + (" ..." if len(missing) > 10 else "")
        raise ValueError(
            f"data.num_classes={num_classes}, but {dataset} has only {found} of them present "
            f"(no samples of class {shown}); set data.num_classes={found} if the labels are "
            f"0..{found - 1}, or train on data that has every class"
        )
