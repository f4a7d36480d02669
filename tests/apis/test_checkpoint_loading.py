# Copyright (c) hidiff_mm contributors. All rights reserved.
"""hidiff_mm's own checkpoint loads (the API's ``init_model`` and ``HIDiff.init_from_stage1``)
read MMEngine checkpoints with nothing added to torch's allow-list beforehand."""
import pickle

import numpy as np
import pytest
import torch
from mmengine.logging.history_buffer import HistoryBuffer

from hidiff_mm.apis import init_model


@pytest.fixture
def mmengine_checkpoint(tiny_files, tmp_path):
    """The tiny model's weights with what an MMEngine run adds: message-hub logs (HistoryBuffer
    of numpy arrays, with its statistics methods) and numpy scalars in the runtime info."""
    state = torch.load(tiny_files[1], weights_only=True)['state_dict']
    history = HistoryBuffer()
    history.update(0.5)
    history.update(0.25)
    path = tmp_path / 'iter_4.pth'
    torch.save(dict(meta=dict(iter=4), state_dict=state,
                    message_hub=dict(log_scalars={'train/loss': history},
                                     runtime_info=dict(eta=np.float64(12.5)))), path)
    return str(path), state


def test_init_model_reads_an_mmengine_checkpoint(tiny_files, mmengine_checkpoint,
                                                 no_safe_globals):
    path, state = mmengine_checkpoint
    with pytest.raises(pickle.UnpicklingError, match='HistoryBuffer'):
        torch.load(path)  # so the allow-list is needed, and not left behind by anything
    model = init_model(tiny_files[0], path)
    assert all(torch.equal(model.state_dict()[k], v) for k, v in state.items())
    assert torch.serialization.get_safe_globals() == []


def test_load_stage1_reads_an_mmengine_checkpoint(tiny_files, mmengine_checkpoint,
                                                  no_safe_globals):
    path, state = mmengine_checkpoint
    model = init_model(tiny_files[0])
    model.load_stage1(path)
    own = model.state_dict()
    loaded = [k for k in state if k.startswith(('generator.', 'prior_head.encoder_s1.'))]
    assert loaded and all(torch.equal(own[k], state[k]) for k in loaded)
    assert torch.serialization.get_safe_globals() == []
