# Copyright (c) hidiff_mm contributors. All rights reserved.
"""Models for the deployment tests: a tiny random one, the shipped demo model, and the
GoPro-size architecture with random weights."""
from pathlib import Path

import pytest
import torch
from mmengine.config import Config

import hidiff_mm  # noqa: F401  (registers the HI-Diff modules)
from hidiff_mm.apis import init_model
from hidiff_mm.apis.demo_model import DEMO_CONFIG, DEMO_WEIGHTS

REPO = str(Path(__file__).resolve().parents[2])

TINY = dict(
    type='HIDiff', stage=2,
    generator=dict(type='HIDiffTransformer', dim=8, num_blocks=[1, 1, 1, 1],
                   num_refinement_blocks=1, prior_channels=16),
    prior_head=dict(
        type='LatentPriorHead',
        encoder_s1=dict(type='HIDiffLatentEncoder', in_channels=6, embed_dim=4, num_blocks=1),
        encoder_s2=dict(type='HIDiffLatentEncoder', in_channels=3, embed_dim=4, num_blocks=1),
        denoiser=dict(type='HIDiffMixerDenoiser', prior_channels=16, inner_channels=16)),
    data_preprocessor=dict(type='DataPreprocessor', mean=[0., 0., 0.], std=[255., 255., 255.]))


@pytest.fixture(scope='session')
def tiny_model():
    """A tiny random-weight HI-Diff (seed 0), eval mode."""
    torch.manual_seed(0)
    return init_model(Config(dict(model=TINY)))


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
