"""CelebA from fabricated 178x218 JPEGs: the 178x178 centre crop, splits, missing files."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from ganforge.data.celeba import CelebADataModule
from ganforge.data.download import DatasetNotFoundError


@pytest.fixture
def celeba_root(tmp_path):
    folder = tmp_path / "celeba" / "img_align_celeba"
    folder.mkdir(parents=True)
    for i in range(1, 7):
        face = np.zeros((218, 178, 3), np.uint8)  # black bands above and below the centre square
        face[20:198] = (200, 30 * i, 100)
        Image.fromarray(face).save(folder / f"{i:06d}.jpg", quality=95)
    partition = "".join(f"{i:06d}.jpg {0 if i <= 4 else 2}\n" for i in range(1, 7))
    (tmp_path / "celeba" / "list_eval_partition.txt").write_text(partition)
    return tmp_path


def test_celeba_centre_crop_then_resize(celeba_root):
    dm = CelebADataModule(root=celeba_root, download=False, batch_size=2)
    dm.prepare_data()
    dm.setup()
    x = dm.train_set.x
    assert x.shape == (6, 3, 64, 64) and dm.num_classes == 0
    # the 178x178 crop holds only the coloured square: no black bands survive
    assert x[:, 0].float().min() > 150
    assert dm.train_set.y.tolist() == [-1] * 6


def test_celeba_partition_split(celeba_root):
    dm = CelebADataModule(root=celeba_root, download=False, split="train", cache=False)
    dm.setup()
    assert [p.name for p in dm.train_set.paths] == [f"{i:06d}.jpg" for i in range(1, 5)]
    assert dm.real_samples(2).shape == (2, 3, 64, 64)


def test_celeba_missing_names_the_folder(tmp_path):
    dm = CelebADataModule(root=tmp_path, download=False)
    with pytest.raises(DatasetNotFoundError, match=r"img_align_celeba/\*\.jpg \(202,599 images") as err:
        dm.prepare_data()
    assert str(tmp_path / "celeba") in str(err.value)


def test_celeba_download_without_gdown_or_network_is_clear(tmp_path, monkeypatch):
    def refuse(self):
        raise RuntimeError("To download the CelebA dataset gdown is required")

    monkeypatch.setattr(CelebADataModule, "fetch", refuse)
    with pytest.raises(DatasetNotFoundError, match="gdown is required"):
        CelebADataModule(root=tmp_path, download=True).prepare_data()


def test_celeba_has_no_labels_to_condition_on(tmp_path):
    with pytest.raises(ValueError, match="served without labels"):
        CelebADataModule(root=tmp_path, num_classes=40)
    assert CelebADataModule(root=tmp_path, num_classes=0).num_classes == 0  # unconditional: fine
