"""Fixtures for the data tests: fabricated datasets under each test's tmp_path (see fabricate.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
from fabricate import write_cifar, write_flat_folder, write_image_tree, write_mnist


@pytest.fixture
def mnist_root(tmp_path) -> Path:
    root = tmp_path / "datasets"
    write_mnist(root)
    return root


@pytest.fixture
def cifar_root(tmp_path) -> Path:
    root = tmp_path / "datasets"
    write_cifar(root)
    return root


@pytest.fixture
def image_tree(tmp_path) -> Path:
    """See ``fabricate.write_image_tree``."""
    return write_image_tree(tmp_path / "images")


@pytest.fixture
def flat_folder(tmp_path) -> Path:
    return write_flat_folder(tmp_path / "flat")
