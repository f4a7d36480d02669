# Copyright (c) hidiff_mm contributors. All rights reserved.
"""Fixtures for the data tests: tiny image pairs written to ``tmp_path`` and the CLI tools."""
import importlib.util
import os.path as osp
from pathlib import Path
from types import ModuleType
from typing import Callable, Dict, Sequence, Tuple

import cv2
import numpy as np
import pytest

import hidiff_mm.datasets  # noqa: F401  (registers the modules under test)

REPO = Path(__file__).resolve().parents[2]


def _write_rgb(path: Path, img: np.ndarray) -> None:
    """Write an ``(H, W, 3)`` RGB uint8 image as PNG, creating the folder."""
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), cv2.cvtColor(img, cv2.COLOR_RGB2BGR))


@pytest.fixture
def write_rgb() -> Callable[[Path, np.ndarray], None]:
    """Return ``write(path, rgb_uint8_image)``."""
    return _write_rgb


@pytest.fixture
def make_pairs() -> Callable[..., Dict[str, Tuple[np.ndarray, np.ndarray]]]:
    """Return ``make(root, names, hw=(16, 24), prefix=('input', 'target'))``.

    It writes random RGB pairs ``root/<prefix[0]>/<name>``, ``root/<prefix[1]>/<name>``
    (the target is ``255 - input``, so a swapped or mismatched pair is detectable)
    and returns ``{name: (input, target)}``.
    """
    rng = np.random.default_rng(0)

    def make(root: Path, names: Sequence[str], hw: Tuple[int, int] = (16, 24),
             prefix: Tuple[str, str] = ('input', 'target')):
        pairs = {}
        for name in names:
            blurred = rng.integers(0, 256, (*hw, 3), dtype=np.uint8)
            pairs[name] = (blurred, 255 - blurred)
            _write_rgb(Path(root) / prefix[0] / name, blurred)
            _write_rgb(Path(root) / prefix[1] / name, 255 - blurred)
        return pairs

    return make


@pytest.fixture
def load_tool() -> Callable[[str], ModuleType]:
    """Return ``load(relpath)``, which imports the script ``tools/<relpath>`` as a module."""

    def load(relpath: str) -> ModuleType:
        path = REPO / 'tools' / relpath
        spec = importlib.util.spec_from_file_location(osp.splitext(path.name)[0], path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module

    return load


@pytest.fixture
def repo_root() -> Path:
    """The repository root."""
    return REPO
