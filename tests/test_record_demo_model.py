"""tools/record_demo_model.py exports a training checkpoint's weights, read weights-only."""
import runpy
from pathlib import Path

import numpy as np
import pytest
import torch
from bad_files import malicious_checkpoint
from mmengine.logging import HistoryBuffer

from hidiff_mm.utils import CheckpointError

TOOL = Path(__file__).resolve().parents[1] / 'tools' / 'record_demo_model.py'


@pytest.fixture(scope='module')
def export_weights():
    return runpy.run_path(str(TOOL), run_name='record_test')['export_weights']


def test_export_reads_an_mmengine_checkpoint_weights_only(export_weights, tmp_path):
    """A checkpoint as MMEngine writes it (a HistoryBuffer and numpy values in its meta) loads
    under the scoped allow-list; the export is the float16 state dict with its source."""
    buffer = HistoryBuffer()
    buffer.update(0.5)
    ckpt = tmp_path / 'iter_8.pth'
    state = {'generator.w': torch.tensor([0.1, 2.0]), 'steps': torch.tensor([3])}
    record = dict(hidiff_stage=2, hidiff_diffusion=dict(num_train_timesteps=8))
    torch.save(dict(state_dict=state, meta=dict(iter=8, seed=np.int64(7), **record),
                    message_hub=dict(log_scalars={'train/loss': buffer})), ckpt)
    out = tmp_path / 'demo.pth'
    meta = export_weights(str(ckpt), str(out))
    assert meta == dict(source='iter_8.pth', iter=8, seed=7, dtype='float16', **record)
    assert torch.load(out, weights_only=True)['meta'] == meta
    saved = torch.load(out, weights_only=True)
    assert saved['state_dict']['generator.w'].dtype == torch.float16
    assert torch.equal(saved['state_dict']['generator.w'], state['generator.w'].half())
    assert torch.equal(saved['state_dict']['steps'], state['steps'])


def test_export_refuses_a_malicious_checkpoint(export_weights, tmp_path):
    marker = tmp_path / 'pwned'
    evil = malicious_checkpoint(tmp_path / 'evil.pth', marker)
    with pytest.raises(CheckpointError, match='was refused'):
        export_weights(str(evil), str(tmp_path / 'demo.pth'))
    assert not marker.exists() and not (tmp_path / 'demo.pth').exists()
