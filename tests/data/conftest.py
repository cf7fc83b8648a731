"""Fixtures for the data tests: fabricated datasets under each test's tmp_path (see fabricate.py).

pytest runs in importlib mode, where a test directory is not on ``sys.path``, so
fabricate.py is loaded by its path and handed out as the ``fab`` fixture.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest


def load_fabricate() -> ModuleType:
    name = "ganforge_tests_fabricate"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, Path(__file__).with_name("fabricate.py"))
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


_fab = load_fabricate()
write_cifar, write_flat_folder = _fab.write_cifar, _fab.write_flat_folder
write_image_tree, write_mnist = _fab.write_image_tree, _fab.write_mnist


@pytest.fixture
def fab() -> ModuleType:
    """The fabricate module: ``fab.write_mnist(root)``, ``fab.write_idx(...)``, ..."""
    return _fab


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
