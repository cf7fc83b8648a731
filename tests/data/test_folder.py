"""data=folder on a tree with every kind of file: modes, labels, bad files, caching, errors."""

from __future__ import annotations

import logging

import pytest
import torch
from PIL import Image

from ganforge.data.decode import decode
from ganforge.data.folder import ImageFileDataset, ImageFolderDataModule

READABLE = 9  # of the 11 image files in image_tree


@pytest.fixture
def warned(caplog):
    """The messages the ganforge logger warned with, in order."""
    caplog.set_level(logging.WARNING, logger="ganforge")

    def messages() -> list[str]:
        found = [
            r.getMessage() for r in caplog.records if r.name == "ganforge" and r.levelno == logging.WARNING
        ]
        caplog.clear()
        return found

    return messages


def make(root, **kwargs):
    kwargs.setdefault("image_size", 16)
    kwargs.setdefault("batch_size", 4)
    return ImageFolderDataModule(root, **kwargs)


def test_unreadable_files_are_skipped_with_one_warning(image_tree, warned, recwarn):
    dm = make(image_tree)
    dm.setup()
    (msg,) = warned()
    assert not [w for w in recwarn if "skipped" in str(w.message)]  # the log, not Python's warnings
    assert "skipped 2 of 11" in msg and "cats/broken.png" in msg and "dogs/truncated.jpg" in msg
    assert len(dm.train_set) == READABLE  # text and csv files were never candidates
    assert dm.train_set.y.tolist() == [-1] * READABLE  # labels=false


def test_strict_stops_at_the_first_unreadable_file(image_tree):
    with pytest.raises(ValueError, match=r"cannot read .*broken\.png.*data\.strict=true"):
        make(image_tree, strict=True).setup()


def test_every_mode_becomes_the_configured_channels(image_tree, warned):
    for channels in (1, 3):
        dm = make(image_tree, channels=channels)
        dm.setup()
        assert len(warned()) == 1
        x = dm.train_set.x
        assert x.shape == (READABLE, channels, 16, 16) and x.dtype == torch.uint8
        xb, _ = next(iter(dm.train_dataloader()))
        assert xb.shape == (4, channels, 16, 16) and xb.min() >= -1 and xb.max() <= 1


def test_transparency_is_composited_onto_white(tmp_path):
    clear = Image.new("RGBA", (8, 8), (255, 0, 0, 0))
    clear.save(tmp_path / "clear.png")
    assert decode(tmp_path / "clear.png", 8, 3).unique().tolist() == [255]
    sixteen = Image.fromarray(torch.full((8, 8), 0x8000, dtype=torch.int32).numpy().astype("uint16"))
    sixteen.save(tmp_path / "sixteen.png")
    assert decode(tmp_path / "sixteen.png", 8, 1).unique().tolist() == [128]  # top byte, not clipped to 255


def test_resize_short_side_then_centre_crop(tmp_path):
    wide = torch.zeros(40, 80, 3, dtype=torch.uint8)
    wide[:, 20:60] = 255  # the centre square is white, the sides black
    Image.fromarray(wide.numpy()).save(tmp_path / "wide.png")
    x = decode(tmp_path / "wide.png", 16, 3)
    assert x.shape == (3, 16, 16) and x.float().mean() > 250
    # crop first (CelebA style), in source pixels
    x = decode(tmp_path / "wide.png", 8, 1, crop=20)
    assert x.shape == (1, 8, 8) and x.float().mean() > 250


def test_labels_from_class_subfolders(image_tree):
    dm = make(image_tree, labels=True, num_classes=3)
    dm.setup()
    assert dm.classes == ["birds", "cats", "dogs"]
    # birds: 3 readable; cats: 3 (a.png, photo.JPG, nested/deeper/gray.png); dogs: 3
    assert dm.train_set.y.tolist() == [0, 0, 0, 1, 1, 1, 2, 2, 2]


def test_label_count_must_match_the_subfolders(image_tree):
    with pytest.raises(
        ValueError, match=r"has 3 class subfolders \(birds, cats, dogs\); set data.num_classes=3"
    ):
        make(image_tree, labels=True, num_classes=5).setup()
    with pytest.raises(ValueError, match=r"data\.labels=false"):
        make(image_tree, labels=False, num_classes=3)


def test_labels_asked_of_an_unlabelled_folder(flat_folder):
    with pytest.raises(ValueError, match="all directly in it"):
        make(flat_folder, labels=True, num_classes=2).setup()


def test_missing_or_empty_directory(tmp_path):
    with pytest.raises(FileNotFoundError, match="is not a directory"):
        make(tmp_path / "absent").setup()
    (tmp_path / "empty" / "sub").mkdir(parents=True)
    (tmp_path / "empty" / "readme.txt").write_text("no images here")
    with pytest.raises(FileNotFoundError, match="no image files"):
        make(tmp_path / "empty").setup()


def test_a_folder_of_only_unreadable_files(tmp_path):
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "x.png").write_bytes(b"nope")
    with pytest.raises(ValueError, match="none of the 1 image files"):
        make(tmp_path / "bad").setup()


def test_lazy_decoding_serves_what_the_cache_holds(image_tree, warned):
    cached = make(image_tree, labels=True)
    lazy = make(image_tree, labels=True, cache=False)
    cached.setup()
    assert "skipped 2 of 11" in warned()[0]
    lazy.setup()
    assert "skipped 1 of 11" in warned()[0]  # the header check finds broken.png
    assert isinstance(lazy.train_set, ImageFileDataset)
    # the truncated JPEG passes the header check; at load time the next image stands in
    x_lazy = lazy.real_samples()
    (failed,) = warned()  # once, though real_samples and the batch below both meet the file
    assert "truncated.jpg could not be decoded" in failed
    assert len(x_lazy) == READABLE + 1
    keep = [i for i, p in enumerate(lazy.train_set.paths) if p.name != "truncated.jpg"]
    torch.testing.assert_close(x_lazy[keep], cached.real_samples())
    xb, yb = lazy.train_set.__getitems__([0, 1, 2])
    assert xb.shape == (3, 3, 16, 16) and yb.tolist() == [0, 0, 0]
    lazy.train_set.__getitems__(list(range(len(lazy.train_set))))
    assert warned() == []


def test_on_device_needs_the_images_in_memory(image_tree):
    dm = make(image_tree, cache=False, on_device=True, verify=False)
    dm.setup()
    with pytest.raises(ValueError, match=r"data\.cache=true"):
        dm.train_dataloader()


def test_fingerprint_changes_with_a_file(image_tree):
    before = make(image_tree).fingerprint()
    assert before == make(image_tree).fingerprint()
    Image.new("RGB", (16, 16), (1, 2, 3)).save(image_tree / "birds" / "b.bmp")
    assert make(image_tree).fingerprint() != before


def test_exif_orientation_is_honoured(tmp_path):
    stored = torch.zeros(10, 20, 3, dtype=torch.uint8)
    stored[:, :10] = 255  # as stored: white left half, black right half
    im = Image.fromarray(stored.numpy())
    exif = im.getexif()
    exif[0x0112] = 6  # "rotate 90° clockwise to display"
    im.save(tmp_path / "rotated.jpg", exif=exif, quality=100)
    x = decode(tmp_path / "rotated.jpg", 10, 1)[0].float()
    # displayed upright the halves are top and bottom, not left and right
    assert abs(x[:5].mean() - x[5:].mean()) > 200 and abs(x[:, :5].mean() - x[:, 5:].mean()) < 30
