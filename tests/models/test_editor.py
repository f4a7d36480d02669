"""The HIDiff editor: stages, trainable sets, blind prediction, the oracle prior only by name,
NaN guard."""

import pytest
import torch
from log_capture import log_lines
from mmagic.registry import MODELS
from mmagic.structures import DataSample
from mmengine.optim import OptimWrapper

from hidiff_mm.utils.errors import ConfigError, InputError


def tiny_model(editor: str = 'HIDiff', **kwargs) -> torch.nn.Module:
    enc = dict(type='HIDiffLatentEncoder', embed_dim=4, num_blocks=1)
    return MODELS.build(dict(
        type=editor,
        generator=dict(type='HIDiffTransformer', dim=8, num_blocks=[1, 1, 1, 1],
                       num_refinement_blocks=1, prior_channels=16),
        prior_head=dict(type='LatentPriorHead', encoder_s1=dict(enc, in_channels=6),
                        encoder_s2=dict(enc, in_channels=3),
                        denoiser=dict(type='HIDiffMixerDenoiser', prior_channels=16,
                                      inner_channels=16)),
        data_preprocessor=dict(type='DataPreprocessor', mean=[0.] * 3, std=[255.] * 3),
        **kwargs))


def trainable(model) -> set:
    return {n.split('.')[0] if n.startswith('generator') else '.'.join(n.split('.')[:2])
            for n, p in model.named_parameters() if p.requires_grad}


def test_stages_select_trainable_networks():
    model = tiny_model()
    assert trainable(model) == {'generator', 'prior_head.encoder_s1'}
    model.set_stage(2)
    assert trainable(model) == {'generator', 'prior_head.encoder_s2', 'prior_head.denoiser'}
    with pytest.raises(ValueError, match='stage must be 1 or 2'):
        model.set_stage(3)


def test_stage_losses_and_gradients():
    """With a zero output convolution the Transformer is the identity (out = conv(...) + blur),
    so the image loss is L1(blur, sharp) whatever the prior: known without the model."""
    torch.manual_seed(0)
    model = tiny_model()
    torch.nn.init.zeros_(model.generator.output.weight)
    blur, sharp = torch.rand(2, 3, 16, 16), torch.rand(2, 3, 16, 16)
    samples = DataSample(gt_img=sharp)
    losses = model(blur, samples, mode='loss')
    assert set(losses) == {'loss_pix'}
    assert torch.allclose(losses['loss_pix'], (blur - sharp).abs().mean())
    losses['loss_pix'].backward()
    assert model.generator.output.weight.grad.abs().sum() > 0

    model.zero_grad()
    model.set_stage(2)
    losses = model(blur, samples, mode='loss')
    assert set(losses) == {'loss_pix', 'loss_prior'}
    assert torch.allclose(losses['loss_pix'], (blur - sharp).abs().mean())
    assert losses['loss_prior'] > 0
    sum(losses.values()).backward()
    assert all(p.grad is None for p in model.prior_head.encoder_s1.parameters())
    assert all(p.grad is not None for p in model.prior_head.denoiser.parameters())


def test_blind_prediction_pads_crops_and_uses_one_draw():
    model = tiny_model().eval()
    blur = torch.rand(1, 3, 37, 53)
    with torch.no_grad():
        torch.manual_seed(3)
        a = model(blur)
        state = torch.get_rng_state()
        torch.manual_seed(3)
        torch.randn(1, 16, 16)
        assert torch.equal(state, torch.get_rng_state())  # exactly one (B, N, C') draw
        torch.manual_seed(3)
        b = model(blur)
        c = model(blur, generator=torch.Generator().manual_seed(3))
    assert a.shape == blur.shape
    assert torch.equal(a, b) and torch.equal(a, c)


@pytest.mark.parametrize('stage', [1, 2])
def test_prediction_is_blind_unless_the_oracle_is_asked_for_by_name(stage):
    """A sharp image in the data samples is not read by default, in either stage; with
    oracle_prior=True it is (the prior of the stage-1 encoder on it), and the log says so."""
    blind, oracle = tiny_model(stage=stage), tiny_model(stage=stage, oracle_prior=True)
    oracle.load_state_dict(blind.state_dict())
    blur, sharp = torch.rand(1, 3, 16, 16), torch.rand(1, 3, 16, 16)
    # validation packs the GT as BGR in [0, 255]; the model takes it back to RGB in [0, 1]
    samples = DataSample(gt_img=sharp.flip(1) * 255)
    samples.set_metainfo(dict(gt_img_output_channel_order='BGR'))
    sharp_in = samples.gt_img.flip(1) / 255
    with torch.no_grad(), log_lines() as lines:
        torch.manual_seed(0)
        blind_out = blind(blur, samples)
        torch.manual_seed(0)
        assert torch.equal(blind_out, blind(blur))
        assert not any('ORACLE' in line for line in lines)
        expected = oracle.generator(blur, oracle.prior_head.encode(blur, sharp_in))
        assert torch.equal(oracle(blur, samples), expected)
        assert torch.equal(oracle(blur, samples), expected)
        torch.manual_seed(0)
        assert torch.equal(oracle(blur), blind_out)  # without a sharp image: blind
    assert sum('ORACLE prior' in line and 'oracle_prior=True' in line for line in lines) == 1
    with torch.no_grad(), log_lines() as lines:  # the next validation run says it again
        oracle.train().eval()
        oracle(blur, samples)
    assert sum('ORACLE prior' in line for line in lines) == 1


def test_the_former_oracle_option_is_refused_by_name():
    with pytest.raises(ValueError, match='oracle_val_prior.*renamed model.oracle_prior'):
        tiny_model(oracle_val_prior=False)
    with pytest.raises(ValueError, match='oracle_prior must be True or False'):
        tiny_model(oracle_prior='yes')


def test_training_stage_is_logged_by_training_not_by_building():
    blur, samples = torch.rand(1, 3, 16, 16), DataSample(gt_img=torch.rand(1, 3, 16, 16))
    with log_lines() as lines:
        model = tiny_model()
        model.set_stage(2)
        model.eval()
        with torch.no_grad():
            model(blur)
        assert not any('training stage' in line for line in lines)
        model.set_stage(1)
        model(blur, samples, mode='loss')
        model(blur, samples, mode='loss')
        model.set_stage(2)
        model(blur, samples, mode='loss')
    assert [line for line in lines if 'training stage' in line] == [
        'HIDiff: training stage 1', 'HIDiff: training stage 2']


def test_init_from_stage1_loads_transformer_and_stage1_encoder_strictly(tmp_path):
    torch.manual_seed(0)
    stage1 = tiny_model()
    path = str(tmp_path / 'iter_4.pth')
    torch.save(dict(meta=dict(hidiff_stage=1), state_dict=stage1.state_dict()), path)
    torch.manual_seed(1)
    stage2 = tiny_model(stage=2, init_from_stage1=path)
    fresh = {k: v.clone() for k, v in stage2.state_dict().items()}
    stage2.init_weights()
    for key, value in stage2.state_dict().items():
        if key.startswith(('generator.', 'prior_head.encoder_s1.')):
            assert torch.equal(value, stage1.state_dict()[key]), key
        else:  # the stage-2 encoder and the denoiser keep their own init, as officially
            assert torch.equal(value, fresh[key]), key

    state = stage1.state_dict()
    dropped = next(k for k in state if k.startswith('prior_head.encoder_s1.'))
    del state[dropped]
    state['generator.extra.weight'] = torch.zeros(1)
    broken = str(tmp_path / 'broken.pth')
    torch.save(dict(state_dict=state), broken)
    with pytest.raises(InputError, match=r"broken\.pth.*unexpected key\(s\) \['extra\.weight'\]"):
        tiny_model(stage=2, init_from_stage1=broken).init_weights()
    del state['generator.extra.weight']
    torch.save(dict(state_dict=state), broken)
    with pytest.raises(InputError, match=dropped[len('prior_head.encoder_s1.'):]):
        tiny_model(stage=2, init_from_stage1=broken).init_weights()
    with pytest.raises(FileNotFoundError, match='model.init_from_stage1: no stage-1 checkpoint'):
        tiny_model(stage=2, init_from_stage1=str(tmp_path / 'missing.pth')).init_weights()


def test_non_finite_loss_stops_before_the_update():
    model = tiny_model()
    optim = OptimWrapper(torch.optim.AdamW(model.parameters(), lr=1e-3))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    data = dict(inputs=[torch.full((3, 16, 16), float('nan'))],
                data_samples=[DataSample(gt_img=torch.zeros(3, 16, 16))])
    with pytest.raises(FloatingPointError, match='non-finite loss at iteration'):
        model.train_step(data, optim)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_test_cfg_sets_the_prediction_options_of_every_caller():
    torch.manual_seed(0)
    plain = tiny_model()
    configured = tiny_model(test_cfg=dict(tile=16, tile_overlap=8, steps=2))
    configured.load_state_dict(plain.state_dict())
    x = torch.rand(1, 3, 24, 40)

    def run(model, **options):
        with torch.no_grad():
            return model.forward_tensor(x, generator=torch.Generator().manual_seed(1), **options)

    assert torch.equal(run(configured), run(plain, tile=16, tile_overlap=8, steps=2))
    assert not torch.equal(run(configured), run(plain))
    assert torch.equal(run(configured, tile=None, steps=None), run(configured))  # None keeps
    with pytest.raises(ConfigError, match=r"model.test_cfg: unknown key\(s\) \['tiles'\]"):
        tiny_model(test_cfg=dict(tiles=16))
    with pytest.raises(ConfigError, match='model.test_cfg: num_inference_steps'):
        tiny_model(test_cfg=dict(steps=99))
    with pytest.raises(InputError, match='^tile must be a positive multiple of 8'):
        run(plain, tile=12)
    with pytest.raises(InputError, match='^overlap must be'):  # the call's, not test_cfg's
        run(configured, tile_overlap=16)
    with pytest.raises(ConfigError, match='model.test_cfg: overlap must be'):
        run(configured, tile=8)
    with pytest.raises(TypeError, match='unknown prediction option'):
        run(plain, overlap=8)


def test_init_from_stage1_names_a_damaged_file(tmp_path):
    from hidiff_mm.utils.io import CheckpointError
    damaged = tmp_path / 'iter_4.pth'
    damaged.write_bytes(b'PK\x03\x04 not a whole checkpoint')
    with pytest.raises(CheckpointError, match='iter_4.pth'):
        tiny_model(stage=2, init_from_stage1=str(damaged)).init_weights()


def test_test_cfg_seed_seeds_every_prediction_call():
    """test_cfg.seed draws z_T of each call from a generator seeded with it (a test run then
    gives every image what deblur(image, seed) gives), unless the caller passes a generator."""
    model = tiny_model(test_cfg=dict(seed=3)).eval()
    blur = torch.rand(1, 3, 16, 16)
    with torch.no_grad():
        seeded = model(blur, generator=torch.Generator().manual_seed(3))
        assert torch.equal(model(blur), seeded) and torch.equal(model(blur), seeded)
        assert not torch.equal(model(blur, generator=torch.Generator().manual_seed(4)), seeded)
    for bad in (-1, 1.5, True):
        with pytest.raises(ConfigError, match='model.test_cfg: seed must be a non-negative'):
            tiny_model(test_cfg=dict(seed=bad))
