"""hidiff_mm.utils.io and .checkpoint: weight files read without running code, errors naming the
file, atomic writes that name the file they failed to write."""
import errno
import os

import pytest
import torch
from bad_files import damaged_copies, malicious_checkpoint
from torch import nn

from hidiff_mm.utils import CheckpointError, atomic_write_bytes, load_weights_file
from hidiff_mm.utils.checkpoint import check_fits, state_dict_of


def test_damaged_files_are_named_with_their_size(tmp_path):
    good = tmp_path / 'good.pth'
    torch.save({'state_dict': {'w': torch.arange(1000.)}}, good)
    assert torch.equal(load_weights_file(good)['state_dict']['w'], torch.arange(1000.))
    for name, path in damaged_copies(good, tmp_path).items():
        size = path.stat().st_size
        with pytest.raises(CheckpointError, match=rf'cannot read checkpoint .*{name}\.pth '
                           rf'\({size} bytes\): truncated, corrupted or not a PyTorch file'):
            load_weights_file(path)
    with pytest.raises(FileNotFoundError, match='official checkpoint not found: .*nope.pth'):
        load_weights_file(tmp_path / 'nope.pth', 'official checkpoint')
    with pytest.raises(IsADirectoryError, match='is a folder; expected a file'):
        load_weights_file(tmp_path)


def test_mmengine_checkpoints_load_in_their_own_scope(tmp_path, no_safe_globals):
    """An MMEngine checkpoint pickles a HistoryBuffer: read without any global allow-list."""
    from mmengine.logging import HistoryBuffer
    path = tmp_path / 'iter_1.pth'
    torch.save({'message_hub': {'log_scalars': {'loss': HistoryBuffer([1.0, 2.0], [1, 1])}},
                'state_dict': {'w': torch.ones(2)}}, path)
    with pytest.raises(Exception):  # what hidiff_mm's scope lifts
        torch.load(path, weights_only=True)
    loaded = load_weights_file(path)
    assert loaded['message_hub']['log_scalars']['loss'].mean() == 1.5


def test_malicious_file_is_refused_without_running_it(tmp_path):
    marker = tmp_path / 'pwned'
    evil = malicious_checkpoint(tmp_path / 'evil.pth', marker)
    with pytest.raises(CheckpointError, match=r'evil\.pth was refused: it asks to load '
                       r'(posix|os)\.system.*nothing was executed'):
        load_weights_file(evil)
    assert not marker.exists()


def test_failed_atomic_write_names_the_target_and_keeps_the_old_file(tmp_path, monkeypatch):
    target = tmp_path / 'ckpt.pth'
    atomic_write_bytes(b'old', str(target))

    def full(fd):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, 'fsync', full)
    with pytest.raises(OSError, match=rf'cannot write {target}: No space left on device') as err:
        atomic_write_bytes(b'new contents', str(target))
    assert err.value.errno == errno.ENOSPC
    monkeypatch.undo()
    assert target.read_bytes() == b'old' and os.listdir(tmp_path) == ['ckpt.pth']


def test_state_dict_of_and_check_fits():
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.Conv2d(4, 2, 1))
    state = model.state_dict()
    wrapped = {'meta': {}, 'state_dict': {f'module.{k}': v for k, v in state.items()}}
    assert state_dict_of(wrapped, 'x.pth').keys() == state.keys()
    with pytest.raises(CheckpointError, match='y.pth is not a state dict'):
        state_dict_of({'state_dict': {'a': 'text'}}, 'y.pth')
    check_fits(model, state, 'ok.pth')
    partial = {k: v for k, v in state.items() if k.startswith('0.')}
    with pytest.raises(CheckpointError, match=r"p.pth does not fit .* 2 weights of the model are "
                       r"missing, e.g. \['1.weight', '1.bias'\]"):
        check_fits(model, partial, 'p.pth')
    check_fits(model, partial, 'p.pth', allow_missing=True)
    check_fits(model, partial, 'p.pth', optional=['1.'])
    other = nn.Sequential(nn.Conv2d(3, 8, 3), nn.Conv2d(8, 2, 1)).state_dict()
    with pytest.raises(CheckpointError, match=r'differ in shape, e.g. 0.bias: file \(8,\) vs '
                       r'model \(4,\)'):
        check_fits(model, other, 's.pth', allow_missing=True)
    with pytest.raises(CheckpointError, match='none of its 1 weights belongs to the model'):
        check_fits(model, {'foo': torch.zeros(1)}, 'n.pth', allow_missing=True)


def test_check_fits_sees_through_model_wrappers():
    """As MMSeparateDistributedDataParallel wraps a GAN's parts: wrappers inside a wrapper."""
    model = nn.Module()
    model.generator = nn.Conv2d(3, 4, 3)
    model.discriminator = nn.Conv2d(4, 1, 3)
    state = model.state_dict()
    wrapped = nn.Module()
    wrapped.generator = nn.DataParallel(model.generator)
    wrapped.discriminator = nn.DataParallel(model.discriminator)
    assert 'generator.module.weight' in wrapped.state_dict()
    check_fits(nn.DataParallel(wrapped), state, 'gan.pth')
