# Copyright (c) hidiff_mm contributors. All rights reserved.
"""Checkpoints record their training stage and diffusion settings (training hook, demo export);
``init_model`` checks them against the config and says what it does."""
import logging
from types import SimpleNamespace

import pytest
import torch
from apis_helpers import load_tool
from log_capture import log_lines

from hidiff_mm.apis import init_model
from hidiff_mm.apis.demo_model import DEMO_CONFIG
from hidiff_mm.engine.hooks import DiffusionSettingsHook
from hidiff_mm.utils.training_record import DIFFUSION_KEY, STAGE_KEY, training_record


def save(path, state: dict, **meta) -> str:
    torch.save(dict(meta=meta, state_dict=state), path)
    return str(path)


def test_the_hook_records_stage_and_diffusion_settings(tiny_model):
    checkpoint = {}
    DiffusionSettingsHook().before_save_checkpoint(SimpleNamespace(model=tiny_model), checkpoint)
    assert checkpoint['meta'] == {
        STAGE_KEY: 2, DIFFUSION_KEY: tiny_model.prior_head.scheduler.settings()}
    plain = SimpleNamespace(model=torch.nn.Linear(1, 1))  # no prior head: nothing to record
    DiffusionSettingsHook().before_save_checkpoint(plain, checkpoint := {})
    assert checkpoint == {}


def test_init_model_checks_the_record_and_says_what_it_does(tiny_files, tiny_model, tmp_path):
    config, _ = tiny_files
    state = tiny_model.state_dict()
    record = training_record(tiny_model)
    with log_lines(logging.INFO) as lines:
        init_model(config, save(tmp_path / 'same.pth', state, **record))
    assert lines == []

    with log_lines(logging.INFO) as lines:
        init_model(config, save(tmp_path / 'stage1.pth', state, **dict(record, hidiff_stage=1)))
    assert any('was trained through stage 1, the config says stage 2: kept as configured' in line
               and 'blind' in line for line in lines), lines
    assert any('is a stage-1 checkpoint' in line and 'model.oracle_prior=True' in line
               for line in lines), lines

    ddim = dict(record[DIFFUSION_KEY], sampler=dict(type='ddim', eta=0.0))
    with log_lines(logging.INFO) as lines:
        init_model(config, save(tmp_path / 'ddim.pth', state,
                                **dict(record, hidiff_diffusion=ddim)))
    assert lines == [f"{tmp_path / 'ddim.pth'}: sampler: trained with {{'type': 'ddim', "
                     "'eta': 0.0}, sampling with {'type': 'posterior_mean'}"]

    other_t = dict(record[DIFFUSION_KEY], num_train_timesteps=16)
    path = save(tmp_path / 'other_t.pth', state, **dict(record, hidiff_diffusion=other_t))
    with pytest.raises(ValueError, match=r'other_t\.pth: .*num_train_timesteps: trained 16, '
                       r'configured 8'):
        init_model(config, path)

    with log_lines(logging.INFO) as lines:  # written before checkpoints carried a record
        init_model(config, save(tmp_path / 'old.pth', state))
    assert any('records no diffusion settings' in line and 'unchecked' in line
               for line in lines), lines
    assert any('records no training stage: prediction is blind' in line for line in lines), lines


def test_the_oracle_needs_the_stage1_encoder(tiny_files, tiny_model, tmp_path):
    """A converted test file may lack the stage-1 encoder, unless the oracle prior is asked for."""
    config, _ = tiny_files
    state = {k: v for k, v in tiny_model.state_dict().items()
             if not k.startswith('prior_head.encoder_s1.')}
    path = save(tmp_path / 'no_e1.pth', state, **training_record(tiny_model))
    init_model(config, path)
    with pytest.raises(ValueError, match='encoder_s1'):
        init_model(config, path, cfg_options={'model.oracle_prior': True})


def test_the_demo_export_records_stage_and_settings(tiny_model, tmp_path):
    record_tool = load_tool('record_demo_model')
    settings = init_model(DEMO_CONFIG).prior_head.scheduler.settings()
    state = {'w': torch.ones(2)}
    trained = save(tmp_path / 'iter_6.pth', state, iter=6, seed=0, hidiff_stage=2)
    meta = record_tool.export_weights(trained, str(tmp_path / 'demo.pth'))
    written = torch.load(tmp_path / 'demo.pth', weights_only=True)
    assert written['meta'] == meta
    assert (meta[STAGE_KEY], meta[DIFFUSION_KEY], meta['iter']) == (2, settings, 6)
    assert written['state_dict']['w'].dtype == torch.float16
    recorded = dict(settings, sampler=dict(type='ddim', eta=0.0))
    trained = save(tmp_path / 'iter_7.pth', state, iter=7, seed=0, hidiff_stage=2,
                   hidiff_diffusion=recorded)
    assert record_tool.export_weights(trained, str(tmp_path / 'd.pth'))[DIFFUSION_KEY] == recorded
    with pytest.raises(ValueError, match=r'iter_8\.pth records no training stage'):
        record_tool.export_weights(save(tmp_path / 'iter_8.pth', state, iter=8),
                                   str(tmp_path / 'x.pth'))
