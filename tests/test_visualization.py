import importlib.util

from mmagic.registry import VISBACKENDS
from mmengine.visualization import TensorboardVisBackend

import hidiff_mm  # noqa: F401  (registers TensorboardIfInstalled)


def test_tensorboard_backend_only_when_installed(tmp_path, monkeypatch):
    monkeypatch.setattr(importlib.util, 'find_spec', lambda name: None)
    backend = VISBACKENDS.build(dict(type='TensorboardIfInstalled', save_dir=str(tmp_path)))
    assert not isinstance(backend, TensorboardVisBackend)
    backend.add_scalar('loss', 1.0)  # accepted, recorded nowhere
    assert list(tmp_path.iterdir()) == []

    monkeypatch.setattr(importlib.util, 'find_spec', lambda name: object())
    backend = VISBACKENDS.build(dict(type='TensorboardIfInstalled', save_dir=str(tmp_path)))
    assert isinstance(backend, TensorboardVisBackend)
