"""The HIDiff editor: stages, trainable sets, blind prediction, oracle validation, NaN guard."""
import pytest
import torch
from mmagic.registry import MODELS
from mmagic.structures import DataSample
from mmengine.optim import OptimWrapper

from hidiff_mm.utils.errors import InputError


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


def test_stage1_validates_with_the_oracle_prior_by_default():
    blind, oracle = tiny_model(oracle_val_prior=False), tiny_model()
    oracle.load_state_dict(blind.state_dict())
    blur, sharp = torch.rand(1, 3, 16, 16), torch.rand(1, 3, 16, 16)
    # validation packs the GT as BGR in [0, 255]
    samples = DataSample(gt_img=sharp.flip(1) * 255)
    samples.set_metainfo(dict(gt_img_output_channel_order='BGR'))
    with torch.no_grad():
        expected = oracle.generator(blur, oracle.prior_head.encode(blur, sharp))
        assert torch.allclose(oracle(blur, samples), expected, atol=1e-5)
        torch.manual_seed(0)
        blind_out = blind(blur, samples)
        torch.manual_seed(0)
        assert torch.equal(blind_out, blind(blur))
        oracle.set_stage(2)  # stage 2 is always blind
        torch.manual_seed(0)
        assert torch.equal(oracle(blur, samples), blind_out)


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
    with pytest.raises(KeyError, match=r"unknown key\(s\) \['tiles'\]"):
        tiny_model(test_cfg=dict(tiles=16))
    with pytest.raises(ValueError, match='num_inference_steps'):
        tiny_model(test_cfg=dict(steps=99))
    with pytest.raises(ValueError, match='tile must be a positive multiple of 8'):
        run(plain, tile=12)
    with pytest.raises(TypeError, match='unknown prediction option'):
        run(plain, overlap=8)


def test_init_from_stage1_names_a_damaged_file(tmp_path):
    from hidiff_mm.utils.io import CheckpointError
    damaged = tmp_path / 'iter_4.pth'
    damaged.write_bytes(b'PK\x03\x04 not a whole checkpoint')
    with pytest.raises(CheckpointError, match='iter_4.pth'):
        tiny_model(stage=2, init_from_stage1=str(damaged)).init_weights()
