"""Datasets in their real on-disk formats, fabricated so that data tests run offline.

MNIST/Fashion-MNIST: IDX files as LeCun distributes them (big-endian header, then
bytes), gzipped for the training split and raw for the test split, in
``<root>/MNIST/raw``. CIFAR-10: the python pickle batches in
``<root>/cifar-10-batches-py``. A folder tree with every kind of file a user's
image directory holds, good and bad.
"""

from __future__ import annotations

import gzip
import io
import pickle
import struct
from pathlib import Path

import numpy as np
from PIL import Image


def write_idx(path: Path, array: np.ndarray, gz: bool) -> Path:
    array = np.ascontiguousarray(array, dtype=np.uint8)
    header = struct.pack(">HBB", 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    data = header + array.tobytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    if gz:
        path = path.with_name(path.name + ".gz")
        with gzip.open(path, "wb") as f:
            f.write(data)
    else:
        path.write_bytes(data)
    return path


def mnist_like(n: int, seed: int, classes: int = 10) -> tuple[np.ndarray, np.ndarray]:
    """28x28 images with a bright square whose position encodes the label."""
    rng = np.random.default_rng(seed)
    labels = (np.arange(n) % classes).astype(np.uint8)
    images = rng.integers(0, 30, size=(n, 28, 28), dtype=np.uint8)
    for i, k in enumerate(labels):
        r, c = divmod(int(k), 4)
        images[i, 2 + 6 * r : 8 + 6 * r, 2 + 6 * c : 8 + 6 * c] = 255
    return images, labels


def write_mnist(root: Path, folder: str = "MNIST", n_train: int = 40, n_test: int = 20, classes: int = 10):
    raw = root / folder / "raw"
    x, y = mnist_like(n_train, 0, classes)
    write_idx(raw / "train-images-idx3-ubyte", x, gz=True)
    write_idx(raw / "train-labels-idx1-ubyte", y, gz=True)
    xt, yt = mnist_like(n_test, 1, classes)
    write_idx(raw / "t10k-images-idx3-ubyte", xt, gz=False)
    write_idx(raw / "t10k-labels-idx1-ubyte", yt, gz=False)
    return x, y, xt, yt


def write_cifar(root: Path, per_batch: int = 10) -> tuple[np.ndarray, np.ndarray]:
    """Batches pickled as dicts of ``data`` (N x 3072 uint8, R then G then B planes) and ``labels``."""
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    all_x, all_y = [], []
    for i, name in enumerate([*(f"data_batch_{k}" for k in range(1, 6)), "test_batch"]):
        data = rng.integers(0, 256, size=(per_batch, 3072), dtype=np.uint8)
        labels = [int(v) for v in (np.arange(per_batch) + i * per_batch) % 10]
        entry = {
            "batch_label": f"batch {i + 1} of 5",
            "labels": labels,
            "data": data,
            "filenames": [f"img_{i}_{j}.png" for j in range(per_batch)],
        }
        with open(folder / name, "wb") as f:
            pickle.dump(entry, f, protocol=2)
        if name != "test_batch":
            all_x.append(data)
            all_y += labels
    meta = {
        "label_names": [
            "airplane",
            "automobile",
            "bird",
            "cat",
            "deer",
            "dog",
            "frog",
            "horse",
            "ship",
            "truck",
        ]
    }
    with open(folder / "batches.meta", "wb") as f:
        pickle.dump(meta, f, protocol=2)
    return np.concatenate(all_x).reshape(-1, 3, 32, 32), np.asarray(all_y)


def save_image(im: Image.Image, path: Path, **kwargs) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    im.save(path, **kwargs)
    return path


def pattern(size: tuple[int, int], seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, size=(size[1], size[0], 3), dtype=np.uint8)


def write_image_tree(root: Path) -> Path:
    """root/{cats,dogs,birds}/...: 9 readable images of every mode, 2 unreadable, 2 non-images.

    cats: RGB PNG, JPEG (a non-square photo), nested/grayscale PNG
    dogs: RGBA PNG, palette PNG with a transparent index, WebP
    birds: BMP, 16-bit grayscale PNG, LA PNG
    unreadable: cats/broken.png (garbage bytes), dogs/truncated.jpg (cut in half)
    ignored: notes.txt, dogs/labels.csv
    """
    save_image(Image.fromarray(pattern((40, 40), 0)), root / "cats" / "a.png")
    save_image(Image.fromarray(pattern((80, 48), 1)), root / "cats" / "photo.JPG", quality=90)
    gray = Image.fromarray(pattern((24, 24), 2)[:, :, 0])
    save_image(gray, root / "cats" / "nested" / "deeper" / "gray.png")
    rgba = np.dstack([pattern((32, 32), 3), np.full((32, 32), 128, np.uint8)])
    save_image(Image.fromarray(rgba), root / "dogs" / "rgba.png")
    pal = Image.fromarray(pattern((32, 32), 4)).quantize(16)
    save_image(pal, root / "dogs" / "palette.png", transparency=0)
    save_image(Image.fromarray(pattern((36, 36), 5)), root / "dogs" / "pic.webp", quality=90)
    save_image(Image.fromarray(pattern((32, 32), 6)), root / "birds" / "b.bmp")
    deep = (np.arange(32 * 32, dtype=np.uint16).reshape(32, 32) * 64).astype(np.uint16)
    save_image(Image.fromarray(deep), root / "birds" / "sixteen.png")
    la = np.dstack([pattern((32, 32), 7)[:, :, 0], np.full((32, 32), 255, np.uint8)])
    save_image(Image.fromarray(la), root / "birds" / "la.png")
    (root / "cats" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\nthis is not really a png")
    buf = io.BytesIO()
    Image.fromarray(pattern((64, 64), 8)).save(buf, format="JPEG", quality=95)
    (root / "dogs" / "truncated.jpg").write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])
    (root / "notes.txt").write_text("not an image")
    (root / "dogs" / "labels.csv").write_text("a,b\n")
    return root


def write_flat_folder(root: Path, n: int = 6) -> Path:
    """``n`` RGB PNGs directly in ``root``: no class subfolders."""
    for i in range(n):
        save_image(Image.fromarray(pattern((20, 20), 10 + i)), root / f"{i}.png")
    return root
