# Copyright (c) hidiff_mm contributors. All rights reserved.
"""HIDiffGAN (HI-Diff-PE): checkpoint compatibility, G/D steps, loss values, discriminator."""
import os.path as osp

import pytest
import torch
import torchvision
from mmagic.models.editors.srgan.modified_vgg import ModifiedVGG
from mmagic.registry import MODELS
from mmagic.structures import DataSample
from mmengine.config import Config
from mmengine.logging import MessageHub
from mmengine.optim import OptimWrapper, OptimWrapperDict, build_optim_wrapper

from hidiff_mm.utils.errors import ConfigError

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
ENC = dict(type='HIDiffLatentEncoder', embed_dim=4, num_blocks=1)
ARCH = dict(
    generator=dict(type='HIDiffTransformer', dim=8, num_blocks=[1, 1, 1, 1],
                   num_refinement_blocks=1, prior_channels=16),
    prior_head=dict(type='LatentPriorHead', encoder_s1=dict(ENC, in_channels=6),
                    encoder_s2=dict(ENC, in_channels=3),
                    denoiser=dict(type='HIDiffMixerDenoiser', prior_channels=16,
                                  inner_channels=16)),
    data_preprocessor=dict(type='DataPreprocessor', mean=[0.] * 3, std=[255.] * 3))
LAMBDA, ETA = 0.5, 0.25


@pytest.fixture(autouse=True, scope='module')
def one_thread():
    """One intra-op thread: the test machines are small and shared (busy-waiting OpenMP threads
    make tiny convolutions 100x slower under load)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope='module')
def vgg_file(tmp_path_factory):
    """torchvision-format VGG-19 ``features.*`` with random weights."""
    torch.manual_seed(0)
    with torch.device('meta'):
        features = torchvision.models.vgg19(weights=None).features
    features.to_empty(device='cpu')
    for m in features.modules():
        if isinstance(m, torch.nn.Conv2d):
            torch.nn.init.kaiming_normal_(m.weight, mode='fan_out', nonlinearity='relu')
            torch.nn.init.zeros_(m.bias)
    path = str(tmp_path_factory.mktemp('vgg') / 'vgg19.pth')
    torch.save({f'features.{k}': v for k, v in features.state_dict().items()}, path)
    return path


def gan(vgg_file, **kwargs):
    torch.manual_seed(0)
    return MODELS.build(dict(
        type='HIDiffGAN',
        discriminator=dict(type='VGGStyleDiscriminator', mid_channels=4, input_size=16,
                           num_stages=2),
        perceptual_loss=dict(type='LocalPerceptualLoss', vgg_path=vgg_file,
                             layer_weights={'conv2_2': 1.0}, perceptual_weight=LAMBDA),
        gan_loss=dict(type='GANLoss', gan_type='vanilla', loss_weight=ETA),
        **ARCH, **kwargs))


def optimizers(model, lr=1e-2):
    params = list(model.generator.parameters()) + list(model.prior_head.parameters())
    return OptimWrapperDict(
        generator=OptimWrapper(torch.optim.Adam(params, lr)),
        discriminator=OptimWrapper(torch.optim.Adam(model.discriminator.parameters(), lr)))


def batch(n=2, size=16):
    g = torch.Generator().manual_seed(5)
    return dict(inputs=[torch.randint(0, 256, (3, size, size), generator=g).float()
                        for _ in range(n)],
                data_samples=[DataSample(gt_img=torch.randint(0, 256, (3, size, size),
                                                              generator=g).float())
                              for _ in range(n)])


def params(model, prefix):
    return {k: v.detach().clone() for k, v in model.named_parameters() if k.startswith(prefix)}


def changed(before, model):
    now = dict(model.named_parameters())
    return {k for k, v in before.items() if not torch.equal(v, now[k])}


def groups(names):
    return {'.'.join(n.split('.')[:2]) if n.startswith('prior_head') else n.split('.')[0]
            for n in names}


@pytest.fixture(autouse=True)
def no_runner_iteration():
    MessageHub.get_current_instance().update_info('iter', None)  # use the model's own counter


def test_hidiff_checkpoints_load_both_ways(vgg_file):
    model = gan(vgg_file)
    hidiff = MODELS.build(dict(type='HIDiff', stage=2, **ARCH))
    missing, unexpected = model.load_state_dict(hidiff.state_dict(), strict=False)
    assert unexpected == [] and missing and all(k.startswith('discriminator.') for k in missing)
    missing, unexpected = hidiff.load_state_dict(model.state_dict(), strict=False)
    assert missing == [] and all(k.startswith('discriminator.') for k in unexpected)
    # the "generator" is exactly HIDiff's blind inference path, and so is prediction
    model.eval(), hidiff.eval()
    blur = torch.rand(1, 3, 13, 19)
    samples = DataSample.stack([DataSample(gt_img=torch.rand(3, 13, 19) * 255)])
    with torch.no_grad():
        torch.manual_seed(4)
        ours = model(blur)
        ours_pred = model(blur, samples, mode='predict')[0].output
        torch.manual_seed(4)
        assert torch.equal(ours, hidiff(blur))
        theirs_pred = hidiff(blur, samples, mode='predict')[0].output
    assert set(ours_pred.keys()) == set(theirs_pred.keys()) >= {'pred_img', 'input_img'}
    for key in ('pred_img', 'input_img'):
        assert torch.equal(ours_pred.get(key), theirs_pred.get(key)), key


def test_trainable_sets(vgg_file):
    trainable = {n for n, p in gan(vgg_file).named_parameters() if p.requires_grad}
    assert groups(trainable) == {'generator', 'prior_head.encoder_s2', 'prior_head.denoiser',
                                 'discriminator'}
    frozen_prior = gan(vgg_file, finetune_prior=False)
    trainable = {n for n, p in frozen_prior.named_parameters() if p.requires_grad}
    assert groups(trainable) == {'generator', 'discriminator'}


def test_composes_only_what_it_uses(vgg_file):
    """The GAN is no HIDiff: its children are the blind path, D and the three losses, and
    HIDiff's stage-training arguments are not accepted."""
    model = gan(vgg_file)
    assert not isinstance(model, MODELS.get('HIDiff'))
    assert {name for name, _ in model.named_children()} == {
        'data_preprocessor', 'generator', 'prior_head', 'discriminator', 'pixel_loss',
        'perceptual_loss', 'gan_loss'}
    for key, value in (('stage', 2), ('prior_loss', dict(type='L1Loss')),
                       ('oracle_prior', True), ('init_from_stage1', 'stage1.pth')):
        with pytest.raises(TypeError, match=key):
            gan(vgg_file, **{key: value})


def test_g_step_changes_only_the_generator_path(vgg_file):
    model = gan(vgg_file, train_cfg=dict(disc_repeat=0))  # G step only
    before = params(model, '')
    log = model.train_step(batch(), optimizers(model))
    assert set(log) == {'loss_pix', 'loss_perceptual', 'loss_gan', 'loss_g'}
    assert groups(changed(before, model)) == {'generator', 'prior_head.encoder_s2',
                                              'prior_head.denoiser'}
    assert all(p.grad is None for p in model.discriminator.parameters())

    frozen_prior = gan(vgg_file, finetune_prior=False, train_cfg=dict(disc_repeat=0))
    before = params(frozen_prior, '')
    frozen_prior.train_step(batch(), optimizers(frozen_prior))
    assert groups(changed(before, frozen_prior)) == {'generator'}


def test_d_step_changes_only_the_discriminator(vgg_file):
    model = gan(vgg_file, train_cfg=dict(disc_init_steps=1))  # iteration 0: D only
    before = params(model, '')
    log = model.train_step(batch(), optimizers(model))
    assert set(log) == {'loss_d_real', 'loss_d_fake'}
    assert groups(changed(before, model)) == {'discriminator'}
    assert changed(before, model) == set(params(model, 'discriminator'))
    # iteration 1: both
    log = model.train_step(batch(), optimizers(model))
    assert set(log) == {'loss_pix', 'loss_perceptual', 'loss_gan', 'loss_g', 'loss_d_real',
                        'loss_d_fake'}


def test_loss_values_signs_and_weights(vgg_file):
    model = gan(vgg_file)
    data = batch()
    blur = torch.stack(data['inputs']) / 255
    sharp = torch.stack([s.gt_img for s in data['data_samples']]) / 255
    torch.manual_seed(7)
    with torch.no_grad():
        fake = model.forward_tensor(blur)
        d_fake, d_real = model.discriminator(fake), model.discriminator(sharp)
        # independent: torchvision conv2_2 (index 7) on ImageNet-normalised RGB
        state = torch.load(vgg_file, weights_only=True)
        with torch.device('meta'):
            vgg = torchvision.models.vgg19(weights=None).features[:8]
        vgg.to_empty(device='cpu')
        vgg.load_state_dict({k[9:]: v for k, v in state.items() if int(k.split('.')[1]) < 8})
        mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
        std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
        l_vgg = (vgg((fake - mean) / std) - vgg((sharp - mean) / std)).abs().mean()
    expected = dict(
        loss_pix=(fake - sharp).abs().mean(),
        loss_perceptual=LAMBDA * l_vgg,
        loss_gan=-ETA * torch.log(torch.sigmoid(d_fake)).mean(),  # non-saturating L_G
        loss_d_real=-torch.log(torch.sigmoid(d_real)).mean(),  # unweighted
        loss_d_fake=-torch.log(1 - torch.sigmoid(d_fake)).mean())
    expected['loss_g'] = expected['loss_pix'] + expected['loss_perceptual'] + \
        expected['loss_gan']
    torch.manual_seed(7)  # the same z_T draw
    log = model.train_step(data, optimizers(model))
    assert set(log) == set(expected)
    for k, v in expected.items():
        assert v > 0 and torch.allclose(log[k], v, rtol=1e-4, atol=1e-7), (k, log[k], v)
        assert log[k].grad_fn is None

    # signs: L_G falls as D(fake) rises, the D loss on fakes rises with it
    logits = d_fake.clone().requires_grad_()
    model.gan_loss(logits, target_is_real=True, is_disc=False).backward()
    assert (logits.grad < 0).all()
    logits.grad = None
    model.gan_loss(logits, target_is_real=False, is_disc=True).backward()
    assert (logits.grad > 0).all()


def test_misuse_is_loud(vgg_file):
    model = gan(vgg_file)
    with pytest.raises(ConfigError, match='MMSeparateDistributedDataParallel'):
        model(torch.rand(1, 3, 16, 16), DataSample(gt_img=torch.rand(1, 3, 16, 16)),
              mode='loss')
    with pytest.raises(ConfigError, match='OptimWrapperDict'):
        model.train_step(batch(), OptimWrapper(torch.optim.Adam(model.parameters())))


def test_vgg_style_discriminator():
    d = MODELS.build(dict(type='VGGStyleDiscriminator', in_channels=3, mid_channels=8,
                          input_size=384, num_stages=6))
    assert d(torch.rand(2, 3, 384, 384)).shape == (2, 1)
    with pytest.raises(ValueError, match='384x384'):
        d(torch.rand(2, 3, 256, 256))
    with pytest.raises(ValueError, match='multiple'):
        MODELS.build(dict(type='VGGStyleDiscriminator', input_size=100, num_stages=3))
    # input_size=128, num_stages=5 is MMagic's ModifiedVGG, layer for layer
    ours = MODELS.build(dict(type='VGGStyleDiscriminator', mid_channels=8)).eval()
    theirs = ModifiedVGG(3, 8).eval()
    assert [v.shape for v in ours.state_dict().values()] == \
        [v.shape for v in theirs.state_dict().values()]
    ours.load_state_dict(dict(zip(ours.state_dict(), theirs.state_dict().values())))
    # float64: the same layers in the same order, so only summation order may differ (~1e-15)
    ours.double(), theirs.double()
    x = torch.rand(2, 3, 128, 128, dtype=torch.float64)
    with torch.no_grad():
        assert torch.allclose(ours(x), theirs(x), rtol=0, atol=1e-12)


@pytest.mark.parametrize('name,lam,eta,betas,iters', [
    ('hidiff_pe1_gopro', 1e-2, 5e-3, (0.9, 0.99), 1000),
    ('hidiff_pe2_gopro', 1.0, 1.0, (0.9, 0.999), 50000),
])
def test_gopro_recipes(name, lam, eta, betas, iters):
    cfg = Config.fromfile(osp.join(REPO, 'configs', 'hidiff_pe', f'{name}.py'))
    model = cfg.model
    assert (model.type, model.finetune_prior) == ('HIDiffGAN', True)
    # the networks of the trained HI-Diff, without its stage-training settings
    hidiff = Config.fromfile(osp.join(REPO, 'configs', '_base_', 'models', 'hidiff_gopro.py'))
    for key in ('generator', 'prior_head', 'data_preprocessor'):
        assert model[key] == hidiff.model[key], key
    assert not {'stage', 'prior_loss', 'oracle_prior'} & set(model)
    assert model.perceptual_loss.layer_weights == {'conv5_4': 1.0}
    assert (model.perceptual_loss.perceptual_weight, model.gan_loss.loss_weight) == (lam, eta)
    assert (model.pixel_loss.loss_weight, model.gan_loss.gan_type) == (1.0, 'vanilla')
    for key in ('generator', 'discriminator'):
        assert cfg.optim_wrapper[key].optimizer == dict(type='Adam', lr=1e-4, betas=betas)
    assert cfg.train_cfg.max_iters == iters and cfg.get('param_scheduler') is None
    crop = [t for t in cfg.train_dataloader.dataset.pipeline if t.type == 'PairedRandomCrop']
    assert crop[0].gt_patch_size == model.discriminator.input_size == 384
    assert cfg.train_dataloader.batch_size * 4 == 8  # 4 GPUs
    assert cfg.model_wrapper_cfg.type == 'MMSeparateDistributedDataParallel'


def test_demo_config_builds_model_and_optimizers(vgg_file):
    cfg = Config.fromfile(osp.join(REPO, 'configs', 'hidiff_pe', 'hidiff_pe_demo.py'))
    cfg.model.perceptual_loss.vgg_path = vgg_file
    model = MODELS.build(cfg.model)
    wrappers = build_optim_wrapper(model, cfg.optim_wrapper)  # as the runner does
    assert set(wrappers.keys()) == {'generator', 'discriminator'}
    g_params = {id(p) for group in wrappers['generator'].param_groups for p in group['params']}
    d_params = {id(p) for group in wrappers['discriminator'].param_groups
                for p in group['params']}
    assert g_params == {id(p) for p in [*model.generator.parameters(),
                                        *model.prior_head.parameters()]}
    assert d_params == {id(p) for p in model.discriminator.parameters()}
