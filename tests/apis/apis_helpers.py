# Copyright (c) hidiff_mm contributors. All rights reserved.
"""Helpers shared by the inference-tool tests."""
import importlib.util
import sys
from pathlib import Path

import cv2
import numpy as np

REPO = Path(__file__).resolve().parents[2]


def smooth_image(seed: int, height: int, width: int) -> np.ndarray:
    """A smooth random BGR uint8 image (bicubically upsampled noise)."""
    rng = np.random.default_rng(seed)
    small = rng.uniform(0, 255, (max(2, height // 8), max(2, width // 8), 3)).astype(np.float32)
    return np.clip(cv2.resize(small, (width, height), interpolation=cv2.INTER_CUBIC), 0,
                   255).round().astype(np.uint8)


def load_tool(name: str):
    """Import tools/<name>.py as a module (its ``main(argv)`` runs in-process)."""
    spec = importlib.util.spec_from_file_location(f'tool_{name}', REPO / 'tools' / f'{name}.py')
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def predict(model, x, generator=None, **options):
    """The editor's prediction (``forward_tensor``) without autograd."""
    import torch
    with torch.no_grad():
        return model.forward_tensor(x, generator=generator, **options)
