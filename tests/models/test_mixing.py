"""PriorGuidedBackbone: HI-Diff's prior injected into MMagic's NAFNet / Restormer by hooks."""
import copy
import os.path as osp

import mmagic
import pytest
import torch
from mmagic.registry import MODELS
from mmagic.structures import DataSample
from mmengine import Config
from mmengine.runner.checkpoint import load_state_dict

from hidiff_mm.models.mixing import PriorGuidedBackbone, level_for_scale

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
C_PRIOR = 16

NAFNET = dict(type='NAFNet', img_channels=3, mid_channels=8, enc_blk_nums=[1, 1, 1, 1],
              middle_blk_num=1, dec_blk_nums=[1, 1, 1, 1])
NAFNET_LOCAL = dict(NAFNET, type='NAFNetLocal', train_size=(1, 3, 32, 32))
NAFNET_POINTS = ['encoders.0', 'encoders.1', 'encoders.2', 'encoders.3', 'middle_blks',
                 'decoders.0', 'decoders.1', 'decoders.2', 'decoders.3']
RESTORMER = dict(type='Restormer', dim=8, num_blocks=[1, 1, 1, 1], num_refinement_blocks=1,
                 heads=[1, 2, 4, 8], ffn_expansion_factor=2.0)
RESTORMER_BEFORE = ['encoder_level1', 'encoder_level2', 'encoder_level3', 'latent',
                    'decoder_level3', 'decoder_level2', 'decoder_level1', 'refinement']

CASES = {
    'nafnet': (NAFNET, dict(insert_after=NAFNET_POINTS)),
    'nafnet_local': (NAFNET_LOCAL, dict(insert_after=NAFNET_POINTS, num_heads=2)),
    'restormer': (RESTORMER, dict(insert_before=RESTORMER_BEFORE,
                                  insert_after=['encoder_level2', 'up2_1'])),
}


def wrap(backbone: dict, **kwargs) -> PriorGuidedBackbone:
    return MODELS.build(dict(type='PriorGuidedBackbone', backbone=backbone,
                             prior_channels=C_PRIOR, **kwargs))


def plain_copy(wrapper: PriorGuidedBackbone, cfg: dict) -> torch.nn.Module:
    plain = MODELS.build(cfg)
    plain.load_state_dict(wrapper.backbone.state_dict())
    return plain


def randomise_fusions(wrapper: PriorGuidedBackbone) -> None:
    for him in wrapper.hims.values():
        torch.nn.init.normal_(him.proj.weight, std=0.5)
        torch.nn.init.normal_(him.proj.bias, std=0.5)


def inputs(batch=2, size=32):
    return torch.rand(batch, 3, size, size), torch.randn(batch, 16, C_PRIOR)


@pytest.mark.parametrize('case', sorted(CASES))
def test_zero_init_reproduces_the_plain_backbone_exactly(case):
    torch.manual_seed(0)
    cfg, kwargs = CASES[case]
    wrapper = wrap(cfg, **kwargs)
    plain = plain_copy(wrapper, cfg)
    img, prior = inputs()
    with torch.no_grad():
        assert torch.equal(wrapper(img, prior), plain(img))
        # and it is a real insertion: with non-zero projections the prior changes the output
        randomise_fusions(wrapper)
        guided = wrapper(img, prior)
        assert not torch.allclose(guided, plain(img), atol=1e-3)
        assert not torch.allclose(guided, wrapper(img, torch.randn_like(prior)), atol=1e-3)
        # the backbone called on its own is the plain backbone
        assert torch.equal(wrapper.backbone(img), plain(img))


def test_gradients_reach_fusions_pyramid_and_backbone():
    torch.manual_seed(0)
    wrapper = wrap(NAFNET, insert_after=NAFNET_POINTS)
    img, prior = inputs()
    prior.requires_grad_(True)
    wrapper(img, prior).square().mean().backward()
    # zero output projections: only they (and the backbone) get a gradient at the first step
    for him in wrapper.hims.values():
        assert him.proj.weight.grad.abs().sum() > 0
    assert all(p.grad is not None for p in wrapper.backbone.parameters() if p.requires_grad)

    wrapper.zero_grad()
    randomise_fusions(wrapper)
    wrapper(img, prior).square().mean().backward()
    for name, p in wrapper.named_parameters():
        if name.startswith('backbone.'):
            continue
        key, layer = name.split('.')[1:3]
        if name.startswith('hims.') and wrapper.points[key].level == 2 and layer in ('q', 'norm1'):
            # one prior token: softmax == 1, the HIM adds proj(v(z3)) and its queries are unused
            assert p.grad is not None and p.grad.abs().sum() == 0, name
        else:
            assert p.grad is not None and p.grad.abs().sum() > 0, name
    assert prior.grad.abs().sum() > 0


def test_pyramid_level_by_resolution_or_by_config():
    assert [level_for_scale(s) for s in (1, 2, 4, 8, 16, 32)] == [0, 1, 1, 2, 2, 2]
    wrapper = wrap(NAFNET, insert_after=NAFNET_POINTS)
    got = {p.name: (p.channels, p.level) for p in wrapper.points.values()}
    assert got == {'encoders.0': (8, 0), 'encoders.1': (16, 1), 'encoders.2': (32, 1),
                   'encoders.3': (64, 2), 'middle_blks': (128, 2), 'decoders.0': (64, 2),
                   'decoders.1': (32, 1), 'decoders.2': (16, 1), 'decoders.3': (8, 0)}
    # the N -> N/4 -> 1 token pyramid of HIDiffTransformer (official down_1 / down_2 keys)
    assert (wrapper.down_1[1].in_features, wrapper.down_1[1].out_features) == (16, 4)
    assert (wrapper.down_2[1].in_features, wrapper.down_2[1].out_features) == (4, 1)

    wrapper = wrap(NAFNET, insert_after=[dict(name='encoders.0', level=1, num_heads=4)])
    point = wrapper.points['encoders_0']
    assert (point.level, point.num_heads, wrapper.hims['encoders_0'].num_heads) == (1, 4, 4)
    assert wrapper.down_2 is None  # only the pyramid levels in use are built

    # channels and level given: no probe forward (a backbone that cannot run still wraps)
    wrapper = wrap(dict(NAFNET, img_channels=5), in_channels=3,
                   insert_after=[dict(name='middle_blks', channels=128, level=2)])
    assert wrapper.hims['middle_blks'].kv.out_features == 2 * 128


def test_invalid_insertion_points_fail_clearly():
    with pytest.raises(ValueError) as err:
        wrap(NAFNET, insert_after=['encoders.0', 'encoder.1'])
    msg = str(err.value)
    assert "'encoder.1' is not a sub-module of the wrapped NAFNet" in msg
    assert "Did you mean 'encoders.1'" in msg
    assert 'Valid names: intro, ending, encoders, encoders.0' in msg and 'middle_blks' in msg

    with pytest.raises(ValueError, match="after 'downs': it is not called in the forward"):
        wrap(NAFNET, insert_after=['downs'])  # a ModuleList: never called itself
    with pytest.raises(ValueError, match='given twice'):
        wrap(NAFNET, insert_after=['encoders.0', dict(name='encoders.0')])
    with pytest.raises(ValueError, match='at least one insertion point'):
        wrap(NAFNET)
    with pytest.raises(ValueError, match='unknown keys'):
        wrap(NAFNET, insert_after=[dict(name='encoders.0', heads=2)])
    wrapper = wrap(NAFNET, insert_after=['encoders.0'])
    with pytest.raises(ValueError, match=r'prior of shape \(B, 16, 16\), got \(2, 4, 16\)'):
        wrapper(torch.rand(2, 3, 32, 32), torch.rand(2, 4, 16))


def test_state_dict_round_trip_and_plain_backbone_weights():
    torch.manual_seed(0)
    cfg = dict(type='PriorGuidedBackbone', backbone=RESTORMER, prior_channels=C_PRIOR,
               insert_before=RESTORMER_BEFORE)
    a = MODELS.build(cfg)
    randomise_fusions(a)
    state = a.state_dict()
    assert {k.split('.')[0] for k in state} == {'backbone', 'hims', 'down_1', 'down_2'}
    plain = MODELS.build(RESTORMER)
    assert {f'backbone.{k}' for k in plain.state_dict()} == {
        k for k in state if k.startswith('backbone.')}

    b = MODELS.build(cfg)
    b.load_state_dict(state)
    img, prior = inputs()
    with torch.no_grad():
        assert torch.equal(a(img, prior), b(img, prior))

    # a plain Restormer state dict goes to the backbone. keys (the HIMs stay zero: no-op)
    c = MODELS.build(cfg)
    result = c.load_state_dict(plain.state_dict(), strict=False)
    assert result.unexpected_keys == []
    assert sorted(result.missing_keys) == sorted(k for k in state if not k.startswith('backbone.'))
    with torch.no_grad():
        assert torch.equal(c(img, prior), plain(img))
    c.backbone.load_state_dict(a.backbone.state_dict())  # the explicit way works too
    assert all(torch.equal(v, state[f'backbone.{k}']) for k, v in c.backbone.state_dict().items())


def tiny_hidiff(backbone: dict, points: dict, pad_multiple: int) -> torch.nn.Module:
    enc = dict(type='HIDiffLatentEncoder', embed_dim=4, num_blocks=1)
    return MODELS.build(dict(
        type='HIDiff',
        generator=dict(type='PriorGuidedBackbone', backbone=backbone, prior_channels=C_PRIOR,
                       **points),
        prior_head=dict(type='LatentPriorHead', encoder_s1=dict(enc, in_channels=6),
                        encoder_s2=dict(enc, in_channels=3),
                        denoiser=dict(type='HIDiffMixerDenoiser', prior_channels=C_PRIOR,
                                      inner_channels=16)),
        pad_multiple=pad_multiple,
        data_preprocessor=dict(type='DataPreprocessor', mean=[0.] * 3, std=[255.] * 3)))


def test_plain_editor_checkpoint_loads_into_the_hidiff_editor(tmp_path):
    """load_from of a plain MMagic NAFNet checkpoint: generator.* -> generator.backbone.*."""
    torch.manual_seed(0)
    plain = MODELS.build(dict(type='BaseEditModel', generator=NAFNET,
                              pixel_loss=dict(type='L1Loss')))
    model = tiny_hidiff(NAFNET, dict(insert_after=NAFNET_POINTS), 16)
    load_state_dict(model, plain.state_dict(), strict=False)  # what the runner does
    got = model.generator.backbone.state_dict()
    assert all(torch.equal(v, got[k[len('generator.'):]]) for k, v in plain.state_dict().items())
    img, prior = inputs()
    with torch.no_grad():
        assert torch.equal(model.generator(img, prior), plain.generator(img))

    # or through the wrapper's init_cfg (the rest keeps its initialisation, the HIMs stay zero)
    ckpt = str(tmp_path / 'plain.pth')
    torch.save(dict(state_dict=plain.state_dict()), ckpt)
    wrapper = wrap(NAFNET, insert_after=NAFNET_POINTS,
                   init_cfg=dict(type='Pretrained', checkpoint=ckpt, prefix='generator.'))
    randomise_fusions(wrapper)
    wrapper.init_weights()
    with torch.no_grad():
        assert torch.equal(wrapper(img, prior), plain.generator(img))


def test_init_weights_keeps_the_prior_a_no_op():
    torch.manual_seed(0)
    wrapper = wrap(NAFNET, insert_after=['encoders.0', 'middle_blks'],
                   init_cfg=dict(type='Normal', layer='Linear', std=1.0))
    randomise_fusions(wrapper)
    wrapper.init_weights()
    assert all(him.proj.weight.abs().sum() == 0 for him in wrapper.hims.values())
    assert wrapper.hims['encoders_0'].q.weight.std() > 0.5  # the init_cfg did apply
    img, prior = inputs()
    with torch.no_grad():
        assert torch.equal(wrapper(img, prior), plain_copy(wrapper, NAFNET)(img))
    off = wrap(NAFNET, insert_after=['encoders.0'], zero_init=False)
    assert off.hims['encoders_0'].proj.weight.abs().sum() > 0


def test_deepcopy_hooks_use_the_copy():
    """EMA and similar deep copies: the copy's hooks must use the copy's HIMs."""
    torch.manual_seed(0)
    wrapper = wrap(NAFNET, insert_after=NAFNET_POINTS)
    twin = copy.deepcopy(wrapper)
    randomise_fusions(twin)
    img, prior = inputs()
    plain = plain_copy(wrapper, NAFNET)
    with torch.no_grad():
        assert torch.equal(wrapper(img, prior), plain(img))
        assert not torch.allclose(twin(img, prior), plain(img), atol=1e-3)


def test_hidiff_editor_trains_and_predicts_with_the_wrapped_backbones():
    torch.manual_seed(0)
    for backbone, points, pad in ((NAFNET_LOCAL, dict(insert_after=NAFNET_POINTS), 16),
                                  (RESTORMER, dict(insert_before=RESTORMER_BEFORE), 8)):
        model = tiny_hidiff(backbone, points, pad)
        blur, sharp = torch.rand(2, 3, 32, 32), torch.rand(2, 3, 32, 32)
        samples = DataSample(gt_img=sharp)
        losses = model(blur, samples, mode='loss')
        assert set(losses) == {'loss_pix'}
        sum(losses.values()).backward()
        assert all(p.grad is not None for p in model.prior_head.encoder_s1.parameters())
        assert all(h.proj.weight.grad.abs().sum() > 0 for h in model.generator.hims.values())

        model.zero_grad()
        model.set_stage(2)
        losses = model(blur, samples, mode='loss')
        assert set(losses) == {'loss_pix', 'loss_prior'}
        sum(losses.values()).backward()
        assert all(p.grad is None for p in model.prior_head.encoder_s1.parameters())
        assert all(p.grad is not None for p in model.prior_head.denoiser.parameters())

        model.eval()
        with torch.no_grad():
            out = model(torch.rand(1, 3, 37, 53))  # padded to pad_multiple, cropped back
        assert out.shape == (1, 3, 37, 53) and torch.isfinite(out).all()


@pytest.mark.parametrize('name,base_cfg,pad', [
    ('nafnet_hidiff-prior_gopro.py', 'nafnet/nafnet_c64eb11128mb1db1111_8xb8-lr1e-3-400k_gopro.py',
     16),
    ('restormer_hidiff-prior_gopro.py', 'restormer/restormer_official_gopro.py', 8),
])
def test_mixing_configs_wrap_the_mmagic_generator(name, base_cfg, pad):
    cfg = Config.fromfile(osp.join(REPO, 'configs', 'mixing', name))
    base = Config.fromfile(osp.join(osp.dirname(mmagic.__file__), '.mim', 'configs', base_cfg))
    model = cfg.model
    assert model.type == 'HIDiff' and model.pad_multiple == pad
    assert model.generator.type == 'PriorGuidedBackbone'
    assert model.generator.backbone == base.model.generator  # the base's, unchanged
    assert model.data_preprocessor.std == [255.] * 3 and model.data_preprocessor.mean == [0.] * 3
    assert 'hidiff_mm' in cfg.custom_imports.imports
    hooks = [h.type for h in cfg.custom_hooks]
    assert 'StageSwitchHook' in hooks and 'ExactResumeHook' in hooks
    # the insertion points exist in the backbone (built narrow and shallow here)
    plain = cfg.model.generator.backbone
    small = dict(plain, **({'mid_channels': 8, 'enc_blk_nums': [1, 1, 1, 1],
                            'train_size': (1, 3, 32, 32)} if plain.type == 'NAFNetLocal' else
                           {'dim': 8, 'num_blocks': [1, 1, 1, 1], 'num_refinement_blocks': 1}))
    gen = dict(cfg.model.generator, backbone=small, prior_channels=C_PRIOR)
    wrapper = MODELS.build(gen)
    assert len(wrapper.hims) == len(gen.get('insert_after', [])) + len(
        gen.get('insert_before', []))


def test_demo_pair_differs_only_by_the_prior():
    plain = Config.fromfile(osp.join(REPO, 'configs/mixing/nafnet_plain_synthetic-demo.py'))
    prior = Config.fromfile(osp.join(REPO, 'configs/mixing/nafnet_hidiff-prior_synthetic-demo.py'))
    for key in ('train_cfg', 'optim_wrapper', 'param_scheduler', 'train_dataloader',
                'val_dataloader', 'randomness'):
        assert plain[key] == prior[key], key
    assert prior.model.generator.backbone == plain.model.generator
    assert prior.model.type == 'HIDiff' and plain.model.type == 'BaseEditModel'
    switch = [h for h in prior.custom_hooks if h.type == 'StageSwitchHook'][0]
    assert 0 < switch.switch_iter < prior.train_cfg.max_iters
