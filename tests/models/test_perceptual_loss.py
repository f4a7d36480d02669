# Copyright (c) hidiff_mm contributors. All rights reserved.
"""LocalPerceptualLoss: layer names, values against MMagic's PerceptualLoss, offline loading."""
from types import SimpleNamespace

import pytest
import torch
import torchvision
from bad_files import damaged_copies, malicious_checkpoint
from mmagic.models.losses import PerceptualLoss
from mmagic.registry import MODELS

from hidiff_mm.models.losses import LocalVGGFeatures, vgg_layer_names
from hidiff_mm.utils import CheckpointError


@pytest.fixture(autouse=True, scope='module')
def one_thread():
    """One intra-op thread: the test machines are small and shared (busy-waiting OpenMP threads
    make tiny convolutions 100x slower under load)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def random_vgg19_file(path) -> str:
    """A torchvision-format vgg19 state dict with random features (torchvision's init).

    Only ``features.*`` plus one ``classifier`` key (the loss ignores the classifier; building
    and saving the full 140M-parameter model would cost seconds for nothing)."""
    torch.manual_seed(0)
    with torch.device('meta'):
        features = torchvision.models.vgg19(weights=None).features
    features.to_empty(device='cpu')
    for m in features.modules():
        if isinstance(m, torch.nn.Conv2d):
            torch.nn.init.kaiming_normal_(m.weight, mode='fan_out', nonlinearity='relu')
            torch.nn.init.zeros_(m.bias)
    state = {f'features.{k}': v for k, v in features.state_dict().items()}
    state['classifier.6.bias'] = torch.zeros(1000)
    torch.save(state, str(path))
    return str(path)


@pytest.fixture(scope='module')
def vgg_file(tmp_path_factory):
    return random_vgg19_file(tmp_path_factory.mktemp('vgg') / 'vgg19.pth')


def test_layer_names_follow_torchvision_indices():
    names = vgg_layer_names('vgg19')
    # the indices MMagic/ESRGAN configs use: conv5_4 = '34' (before ReLU), relu5_4 = '35'
    assert (names['conv1_2'], names['conv2_2'], names['conv3_4'], names['conv4_4'],
            names['conv5_4'], names['relu5_4'], names['pool5']) == (2, 7, 16, 25, 34, 35, 36)
    assert vgg_layer_names('vgg16')['conv5_3'] == 28


def test_matches_mmagic_perceptual_loss(vgg_file, monkeypatch):
    """Same value as MMagic's own PerceptualLoss (whose VGG download is patched out)."""
    state = torch.load(vgg_file, weights_only=True)
    with torch.device('meta'):
        features = torchvision.models.vgg19(weights=None).features
    features.to_empty(device='cpu')
    features.load_state_dict(
        {k[len('features.'):]: v for k, v in state.items() if k.startswith('features.')})
    reference = SimpleNamespace(features=features)  # all PerceptualVGG uses of the model
    monkeypatch.setattr(torchvision.models.vgg, 'vgg19', lambda pretrained=True, **k: reference)
    theirs = PerceptualLoss(layer_weights={'16': 0.5, '34': 1.0}, perceptual_weight=0.01,
                            style_weight=2.0, norm_img=False)
    ours = MODELS.build(dict(type='LocalPerceptualLoss', vgg_path=vgg_file,
                             layer_weights={'conv3_4': 0.5, '34': 1.0}, perceptual_weight=0.01,
                             style_weight=2.0))
    # float64 throughout: the two differ only in where they normalise and how they order sums,
    # ~1e-15 relative after 16 convolutions; 1e-10 fails any float32 step (1e-7) or other math
    theirs.double(), ours.double()
    torch.manual_seed(1)
    x, gt = torch.rand(2, 3, 24, 24).double(), torch.rand(2, 3, 24, 24).double()
    (p_ref, s_ref), (p, s) = theirs(x, gt), ours(x, gt)
    assert p > 0 and s > 0
    assert torch.allclose(p, p_ref, rtol=1e-10, atol=0)
    assert torch.allclose(s, s_ref, rtol=1e-10, atol=0)

    # independent check of the default (conv5_4, ImageNet normalisation, L1 mean)
    default = MODELS.build(dict(type='LocalPerceptualLoss', vgg_path=vgg_file,
                                perceptual_weight=0.01)).double()
    # the ImageNet constants as the loss keeps them: float32 values, widened
    mean = torch.tensor([0.485, 0.456, 0.406]).double().view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).double().view(1, 3, 1, 1)
    with torch.no_grad():
        phi = reference.features[:35]
        expected = 0.01 * (phi((x - mean) / std) - phi((gt - mean) / std)).abs().mean()
    percep, style = default(x, gt)
    assert style is None and torch.allclose(percep, expected, rtol=1e-10, atol=0)


def test_frozen_offline_and_not_in_checkpoints(vgg_file):
    loss = MODELS.build(dict(type='LocalPerceptualLoss', vgg_path=vgg_file))
    assert list(loss.parameters()) == [] and loss.state_dict() == {}
    x = torch.rand(1, 3, 16, 16, requires_grad=True)
    loss(x, torch.rand(1, 3, 16, 16))[0].backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    feats = LocalVGGFeatures(vgg_file, ['relu1_1', 'conv2_1']).double()
    assert feats(torch.rand(1, 3, 8, 8, dtype=torch.float64))['conv2_1'].shape == (1, 128, 4, 4)


def test_missing_or_wrong_file(tmp_path):
    missing = str(tmp_path / 'nope' / 'vgg19-dcbb9e9d.pth')
    with pytest.raises(FileNotFoundError, match=r'vgg_path.*nope/vgg19-dcbb9e9d\.pth'):
        MODELS.build(dict(type='LocalPerceptualLoss', vgg_path=missing))
    wrong = str(tmp_path / 'alex.pth')
    torch.save({'features.0.weight': torch.zeros(64, 3, 11, 11)}, wrong)
    with pytest.raises(ValueError, match='features.0.weight'):
        MODELS.build(dict(type='LocalPerceptualLoss', vgg_path=wrong))
    with pytest.raises(ValueError, match='conv5_4 = 34'):
        MODELS.build(dict(type='LocalPerceptualLoss', vgg_path=wrong,
                          layer_weights={'conv6_1': 1.0}))
    marker = tmp_path / 'pwned'
    evil = str(malicious_checkpoint(tmp_path / 'evil.pth', marker))
    with pytest.raises(CheckpointError, match=r'`vgg_path`.*evil\.pth was refused'):
        MODELS.build(dict(type='LocalPerceptualLoss', vgg_path=evil))
    assert not marker.exists()
    empty = str(damaged_copies(tmp_path / 'alex.pth', tmp_path)['empty'])
    with pytest.raises(CheckpointError, match=r'cannot read .*`vgg_path` .*empty\.pth \(0 bytes\)'):
        MODELS.build(dict(type='LocalPerceptualLoss', vgg_path=empty))
