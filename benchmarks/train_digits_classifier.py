"""Train the digits classifier behind ``metrics=digits`` and write its weights and test accuracy.

    OMP_NUM_THREADS=1 python benchmarks/train_digits_classifier.py

scikit-learn's 1,797 digits are resized to 32x32 exactly as the default training run
sees them (``ganforge.data.digits.load_digits_tensor(32)``), quantised by the metrics'
uint8 map, and split 75/25 stratified with a fixed seed. The network trains on the
training part only (random shifts of up to 2 pixels) and its accuracy on the held-out
part is recorded beside the weights. One thread and fixed seeds make a rerun on the
same platform write the same bytes.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from sklearn.model_selection import train_test_split

import ganforge
from ganforge.data.digits import load_digits_tensor
from ganforge.metrics.extractors.digits import WEIGHTS, DigitsCNN, uint8_to_input
from ganforge.metrics.protocol import quantize_uint8

SPLIT_SEED = 0
TEST_FRACTION = 0.25


def split_digits() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """uint8 images and labels: (x_train, y_train, x_test, y_test)."""
    x, y = load_digits_tensor(32)
    u8 = quantize_uint8(x)
    train_idx, test_idx = train_test_split(
        torch.arange(len(y)).numpy(), test_size=TEST_FRACTION, random_state=SPLIT_SEED, stratify=y.numpy()
    )
    train_idx, test_idx = torch.as_tensor(train_idx), torch.as_tensor(test_idx)
    return u8[train_idx], y[train_idx], u8[test_idx], y[test_idx]


def random_shift(x: torch.Tensor, max_shift: int, g: torch.Generator) -> torch.Tensor:
    """Translate each image by up to ``max_shift`` pixels, filling with the background value 0."""
    n, _, h, w = x.shape
    padded = F.pad(x, (max_shift,) * 4, value=0)
    dy, dx = torch.randint(0, 2 * max_shift + 1, (2, n), generator=g)
    return torch.stack([padded[i, :, dy[i] : dy[i] + h, dx[i] : dx[i] + w] for i in range(n)])


@torch.no_grad()
def accuracy(net: DigitsCNN, x: torch.Tensor, y: torch.Tensor) -> float:
    net.eval()
    return float((net(uint8_to_input(x)).argmax(1) == y).float().mean())


def train(epochs: int, batch_size: int, lr: float, seed: int) -> tuple[DigitsCNN, dict]:
    x_train, y_train, x_test, y_test = split_digits()
    torch.manual_seed(seed)
    g = torch.Generator().manual_seed(seed)
    net = DigitsCNN()
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=epochs)
    for _ in range(epochs):
        net.train()
        order = torch.randperm(len(y_train), generator=g)
        for i in range(0, len(order), batch_size):
            idx = order[i : i + batch_size]
            xb = uint8_to_input(random_shift(x_train[idx], 2, g))
            loss = F.cross_entropy(net(xb), y_train[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        sched.step()
    info = {
        "test_accuracy": accuracy(net, x_test, y_test),
        "train_accuracy": accuracy(net, x_train, y_train),
        "n_train": len(y_train),
        "n_test": len(y_test),
        "split": f"sklearn train_test_split(test_size={TEST_FRACTION}, random_state={SPLIT_SEED}, stratify=y)",
        "input": "load_digits_tensor(32) -> uint8 by x*127.5+128 -> (u-128)/127.5",
        "epochs": epochs,
        "batch_size": batch_size,
        "lr": lr,
        "seed": seed,
        "augmentation": "random shift up to 2 px",
        "parameters": sum(p.numel() for p in net.parameters()),
        "torch": torch.__version__,
        "ganforge": ganforge.__version__,
    }
    return net.eval(), info


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=60)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=WEIGHTS)
    args = parser.parse_args()
    torch.set_num_threads(1)
    start = time.perf_counter()
    net, info = train(args.epochs, args.batch_size, args.lr, args.seed)
    info["train_seconds"] = round(time.perf_counter() - start, 1)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    torch.save(net.state_dict(), args.out)
    info["sha256"] = hashlib.sha256(args.out.read_bytes()).hexdigest()
    args.out.with_suffix(".json").write_text(json.dumps(info, indent=2) + "\n")
    print(f"test accuracy {info['test_accuracy']:.4f} on {info['n_test']} held-out digits -> {args.out}")


if __name__ == "__main__":
    main()
