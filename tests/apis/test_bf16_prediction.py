"""The ``precision`` prediction option: bf16 where the device has bf16 units, else fp32 with one
logged line; never silent. Tolerances: see ``tests/models/test_bf16.py``."""
import logging

import cv2
import numpy as np
import pytest
import torch
from apis_helpers import load_tool, predict, smooth_image
from mmengine.logging import MMLogger
from torch import nn

from hidiff_mm.apis import deblur, init_model
from hidiff_mm.models.editors import prediction

NO_UNITS = 'this CPU has no bf16 units (neither amx_bf16 nor avx512_bf16 in its flags)'


class Lines(logging.Handler):
    """The records MMLogger's current instance emits while attached."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def about_bf16(self):
        return [(r.levelno, r.getMessage()) for r in self.records if 'bf16' in r.getMessage()]


@pytest.fixture
def lines():
    logger = MMLogger.get_current_instance()
    handler = Lines()
    logger.addHandler(handler)
    yield handler
    logger.removeHandler(handler)


@pytest.fixture
def model(tiny_files):
    return init_model(*tiny_files)


def test_precision_is_checked(model):
    assert model.prediction_options().precision == 'fp32'
    assert model.prediction_options(precision='bf16').precision == 'bf16'
    with pytest.raises(ValueError, match=r"precision must be one of \['fp32', 'bf16'\], got "
                       "'fp16'"):
        model.prediction_options(precision='fp16')


def test_bf16_runs_on_a_bf16_copy_converted_once(model, lines, monkeypatch):
    monkeypatch.setattr(prediction, 'bf16_unsupported_reason', lambda device: None)
    x = torch.rand(1, 3, 20, 28)
    gen = torch.Generator()
    ref = predict(model, x, gen.manual_seed(1))
    got = predict(model, x, gen.manual_seed(1), precision='bf16')
    assert got.dtype == torch.float32 and got.shape == ref.shape
    err = (got - ref).abs().max().item()
    steps = sum(isinstance(m, (nn.Conv2d, nn.Linear)) or type(m).__name__ == '_LayerNormBody'
                for m in model.generator.modules())  # the rounded layers on the path
    assert 0 < err <= 2.0**-8 * (ref - x).abs().max().item() * steps**0.5
    copy = model._bf16_generator.get(model.generator)
    assert next(copy.parameters()).dtype == torch.bfloat16
    assert next(model.generator.parameters()).dtype == torch.float32
    assert torch.equal(predict(model, x, gen.manual_seed(1), precision='bf16'), got)
    assert model._bf16_generator.get(model.generator) is copy  # not converted again
    info = lines.about_bf16()
    assert len(info) == 1 and info[0][0] == logging.INFO and 'bf16 prediction' in info[0][1]


def test_bf16_follows_new_weights(model, monkeypatch):
    monkeypatch.setattr(prediction, 'bf16_unsupported_reason', lambda device: None)
    x = torch.rand(1, 3, 16, 16)
    before = predict(model, x, torch.Generator().manual_seed(0), precision='bf16')
    with torch.no_grad():
        model.generator.output.weight.mul_(0.5)  # e.g. an optimizer step between validations
    after = predict(model, x, torch.Generator().manual_seed(0), precision='bf16')
    ref = predict(model, x, torch.Generator().manual_seed(0))
    assert not torch.equal(before, after)
    assert (after - ref).abs().max() < (before - ref).abs().max()


def test_without_bf16_units_predicts_fp32_and_says_so_once(model, lines, monkeypatch):
    monkeypatch.setattr(prediction, 'bf16_unsupported_reason', lambda device: NO_UNITS)
    model.test_cfg = dict(precision='bf16')
    x = torch.rand(1, 3, 16, 24)
    got = [predict(model, x, torch.Generator().manual_seed(2)) for _ in range(2)]
    ref = predict(model, x, torch.Generator().manual_seed(2), precision='fp32')
    assert torch.equal(got[0], ref) and torch.equal(got[1], ref)
    assert lines.about_bf16() == [
        (logging.WARNING, f'HIDiff: precision=bf16 asked for, but {NO_UNITS}; predicting in '
         'fp32')]
    assert '_bf16_generator' not in vars(model)


def test_demo_tool_precision(tiny_files, tmp_path, monkeypatch):
    monkeypatch.setattr(prediction, 'bf16_unsupported_reason', lambda device: None)
    config, checkpoint = tiny_files
    img = smooth_image(3, 24, 32)
    path = tmp_path / 'x.png'
    cv2.imwrite(str(path), img)
    demo = load_tool('demo')
    assert demo.main([str(path), '--config', config, '--checkpoint', checkpoint, '--out',
                      str(tmp_path / 'out'), '--seed', '4', '--precision', 'bf16']) == 0
    model = init_model(config, checkpoint)
    expected = deblur(model, img, seed=4, precision='bf16')
    assert np.array_equal(cv2.imread(str(tmp_path / 'out' / 'x.png')), expected)
    with pytest.raises(SystemExit):
        demo.parse_args([str(path), '--config', config, '--checkpoint', checkpoint, '--out',
                         str(tmp_path), '--precision', 'fp16'])


def test_test_tool_sets_the_precision():
    from mmengine.config import Config
    tool = load_tool('test')
    cfg = Config(dict(model=dict(type='HIDiff', test_cfg=dict(tile=64))))
    tool.set_precision(cfg, None)
    assert cfg.model.test_cfg == dict(tile=64)
    tool.set_precision(cfg, 'bf16')
    assert cfg.model.test_cfg == dict(tile=64, precision='bf16')
    bare = Config(dict(model=dict(type='HIDiff')))
    tool.set_precision(bare, 'fp32')
    assert bare.model.test_cfg == dict(precision='fp32')
    assert tool.parse_args(['c.py', 'w.pth', '--precision', 'bf16']).precision == 'bf16'
