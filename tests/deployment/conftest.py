# Copyright (c) hidiff_mm contributors. All rights reserved.
"""Models for the deployment tests: a tiny random one, the shipped demo model, and the
GoPro-size architecture with random weights."""
from pathlib import Path

import pytest
import torch
from mmengine.config import Config
from tiny_models import TINY_HIDIFF

import hidiff_mm  # noqa: F401  (registers the HI-Diff modules)
from hidiff_mm.apis import init_model
from hidiff_mm.apis.demo_model import DEMO_CONFIG, DEMO_WEIGHTS

REPO = str(Path(__file__).resolve().parents[2])


@pytest.fixture(scope='session')
def tiny_model():
    """A tiny random-weight HI-Diff (seed 0), eval mode."""
    torch.manual_seed(0)
    return init_model(Config(dict(model=TINY_HIDIFF)))


@pytest.fixture(scope='session')
def demo_model():
    """The shipped demo model."""
    return init_model(DEMO_CONFIG, DEMO_WEIGHTS)


@pytest.fixture(scope='session')
def gopro_model():
    """configs/hidiff/hidiff_s2_gopro.py's architecture (25.3M-parameter Transformer) with
    random weights (seed 0)."""
    torch.manual_seed(0)
    return init_model(f'{REPO}/configs/hidiff/hidiff_s2_gopro.py')
