# Copyright (c) hidiff_mm contributors. All rights reserved.
"""Tiny HI-Diff models, their config files and checkpoints for the inference-tool tests."""
import pytest
import torch
from mmagic.utils import register_all_modules
from tiny_models import TINY_HIDIFF

import hidiff_mm  # noqa: F401  (registers the HI-Diff modules)

register_all_modules()


@pytest.fixture(scope='session')
def tiny_files(tmp_path_factory):
    """(config path, checkpoint path) of a tiny random-weight model (seed 0)."""
    from hidiff_mm.apis import init_model
    root = tmp_path_factory.mktemp('tiny_model')
    config = root / 'tiny.py'
    config.write_text(f'model = {TINY_HIDIFF!r}\n')
    torch.manual_seed(0)
    model = init_model(str(config))
    checkpoint = root / 'tiny.pth'
    torch.save(dict(meta=dict(), state_dict=model.state_dict()), checkpoint)
    return str(config), str(checkpoint)


@pytest.fixture(scope='session')
def tiny_model(tiny_files):
    from hidiff_mm.apis import init_model
    return init_model(*tiny_files)


@pytest.fixture(autouse=True)
def one_torch_thread():
    """Tiny models gain nothing from a second thread, and on a busy 2-core machine OpenMP's
    spin-waiting makes two threads many times slower; restored after each test."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
