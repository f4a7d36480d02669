# Copyright (c) hidiff_mm contributors. All rights reserved.
"""LPIPS and DISTS with random trunks saved as torchvision checkpoints, checked against
numpy re-implementations and against the `lpips` / `DISTS_pytorch` packages."""
from pathlib import Path
from typing import Dict, List, Tuple

import numpy as np
import pytest
import torch
import torch.nn.functional as F
import torchvision
from bad_files import damaged_copies, malicious_checkpoint
from mmagic.registry import METRICS

import hidiff_mm  # noqa: F401  (registers the metrics)
from hidiff_mm.evaluation import DISTS, LPIPS
from hidiff_mm.evaluation.metrics.lpips_metric import packaged_calibration
from hidiff_mm.utils import CheckpointError

# ('conv', features index, stride, padding), ('pool', kernel, stride), ('relu',);
# 'relu*' marks an activation that the metric compares
ALEX = [('conv', 0, 4, 2), ('relu*',), ('pool', 3, 2), ('conv', 3, 1, 2), ('relu*',),
        ('pool', 3, 2), ('conv', 6, 1, 1), ('relu*',), ('conv', 8, 1, 1), ('relu*',),
        ('conv', 10, 1, 1), ('relu*',)]
VGG16 = []
for block, convs in enumerate([[0, 2], [5, 7], [10, 12, 14], [17, 19, 21], [24, 26, 28]]):
    if block:
        VGG16.append(('pool', 2, 2))
    for i, index in enumerate(convs):
        VGG16 += [('conv', index, 1, 1), ('relu*',) if i == len(convs) - 1 else ('relu',)]


def run_trunk(spec: List[tuple], state: Dict[str, torch.Tensor], x: torch.Tensor,
              l2pool: bool = False) -> List[np.ndarray]:
    """Float64 forward pass from the raw state dict; returns the compared activations."""
    outs = []
    x = x.double()
    for layer in spec:
        if layer[0] == 'conv':
            _, i, stride, pad = layer
            x = F.conv2d(x, state[f'features.{i}.weight'].double(),
                         state[f'features.{i}.bias'].double(), stride=stride, padding=pad)
        elif layer[0].startswith('relu'):
            x = x.clamp(min=0)
            if layer[0] == 'relu*':
                outs.append(x[0].numpy())
        elif l2pool:
            x = torch.from_numpy(numpy_l2pool(x[0].numpy()))[None]
        else:
            x = F.max_pool2d(x, layer[1], layer[2])
    return outs


def numpy_l2pool(x: np.ndarray) -> np.ndarray:
    """DISTS L2 pooling on (C, H, W): 3x3 window outer([.5, 1, .5]) / 4, stride 2, zero pad 1."""
    w = np.outer([0.5, 1, 0.5], [0.5, 1, 0.5]) / 4
    padded = np.pad(x * x, ((0, 0), (1, 1), (1, 1)))
    h_out, w_out = (x.shape[1] - 1) // 2 + 1, (x.shape[2] - 1) // 2 + 1
    out = np.zeros((x.shape[0], h_out, w_out))
    for i in range(3):
        for j in range(3):
            out += w[i, j] * padded[:, i:i + 2 * h_out:2, j:j + 2 * w_out:2]
    return np.sqrt(out + 1e-12)


def reference_lpips(spec, state, calibration, pred: np.ndarray, gt: np.ndarray) -> float:
    """pred, gt: (H, W, 3) RGB uint8."""
    shift = np.array([-.030, -.088, -.188])[:, None, None]
    scale = np.array([.458, .448, .450])[:, None, None]
    feats = []
    for img in (pred, gt):
        x = (img.transpose(2, 0, 1) / 127.5 - 1 - shift) / scale
        feats.append(run_trunk(spec, state, torch.from_numpy(x)[None]))
    total = 0.
    for k, (f0, f1) in enumerate(zip(*feats)):
        f0 = f0 / (np.sqrt((f0**2).sum(0)) + 1e-10)
        f1 = f1 / (np.sqrt((f1**2).sum(0)) + 1e-10)
        w = calibration[f'lin{k}.model.1.weight'].double().numpy().reshape(-1, 1, 1)
        total += (w * (f0 - f1)**2).sum(0).mean()
    return float(total)


def reference_dists(state, alpha: np.ndarray, beta: np.ndarray, pred: np.ndarray,
                    gt: np.ndarray) -> float:
    mean = np.array([0.485, 0.456, 0.406])[:, None, None]
    std = np.array([0.229, 0.224, 0.225])[:, None, None]
    feats = []
    for img in (pred, gt):
        x = img.transpose(2, 0, 1) / 255.
        feats.append([x] + run_trunk(VGG16, state, torch.from_numpy((x - mean) / std)[None],
                                     l2pool=True))
    alpha, beta = alpha / (alpha.sum() + beta.sum()), beta / (alpha.sum() + beta.sum())
    score, start = 0., 0
    for f0, f1 in zip(*feats):
        n = f0.shape[0]
        a, b = f0.reshape(n, -1), f1.reshape(n, -1)
        ma, mb = a.mean(1), b.mean(1)
        va, vb = ((a - ma[:, None])**2).mean(1), ((b - mb[:, None])**2).mean(1)
        cov = (a * b).mean(1) - ma * mb
        texture = (2 * ma * mb + 1e-6) / (ma**2 + mb**2 + 1e-6)
        structure = (2 * cov + 1e-6) / (va + vb + 1e-6)
        score += (alpha[start:start + n] * texture + beta[start:start + n] * structure).sum()
        start += n
    return float(1 - score)


def random_vgg16_features(seed: int) -> Dict[str, torch.Tensor]:
    """VGG16 ``features.*`` weights, torchvision's init, without building the classifier."""
    torch.manual_seed(seed)
    with torch.device('meta'):
        features = torchvision.models.vgg16(weights=None).features
    features.to_empty(device='cpu')
    for m in features:
        if isinstance(m, torch.nn.Conv2d):
            torch.nn.init.kaiming_normal_(m.weight, mode='fan_out', nonlinearity='relu')
            torch.nn.init.normal_(m.bias, 0, 0.01)
    return {f'features.{k}': v for k, v in features.state_dict().items()}


@pytest.fixture(scope='module')
def trunks(tmp_path_factory) -> Dict[str, Tuple[str, Dict[str, torch.Tensor]]]:
    root = tmp_path_factory.mktemp('trunks')
    torch.manual_seed(0)
    alex = torchvision.models.alexnet(weights=None).state_dict()
    alex = {k: v for k, v in alex.items() if k.startswith('features.') or k == 'classifier.6.bias'}
    vgg = random_vgg16_features(1)
    out = {}
    for name, state in (('alexnet', alex), ('vgg16', vgg)):
        torch.save(state, root / f'{name}.pth')
        out[name] = (str(root / f'{name}.pth'), state)
    return out


def image_pair(seed: int, h: int, w: int) -> Tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    gt = rng.integers(0, 256, (h, w, 3)).astype(np.uint8)
    pred = np.clip(gt * 0.7 + 40 + rng.normal(0, 20, gt.shape), 0, 255).round().astype(np.uint8)
    return pred, gt


def bgr_tensor(img: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(img[..., ::-1].transpose(2, 0, 1).copy()).float()


@pytest.mark.parametrize('net,arch,spec,size', [('alex', 'alexnet', ALEX, (64, 72)),
                                                ('vgg', 'vgg16', VGG16, (32, 40))])
def test_lpips_matches_reference(trunks, net, arch, spec, size):
    path, state = trunks[arch]
    metric = METRICS.build(dict(type='LPIPS', net=net, backbone_path=path, prefix='GoPro'))
    assert isinstance(metric, LPIPS)
    calibration = torch.load(packaged_calibration(net), map_location='cpu', weights_only=True)
    pred, gt = image_pair(0, *size)
    expected = reference_lpips(spec, state, calibration, pred, gt)
    metric.process([], [{'gt_img': bgr_tensor(gt), 'output': {'pred_img': bgr_tensor(pred)}}])
    metric.size = 1
    name = 'LPIPS' if net == 'alex' else 'LPIPS_VGG'
    value = metric.evaluate()[f'GoPro/{name}']
    assert expected > 1e-3
    assert value == pytest.approx(expected, rel=1e-5, abs=1e-7)
    assert metric.process_image(bgr_tensor(gt), bgr_tensor(gt), None) == pytest.approx(0, abs=1e-7)


def patch_torchvision_trunk(monkeypatch, arch: str, state: Dict[str, torch.Tensor]) -> None:
    """Make ``torchvision.models.<arch>(...)`` return the test weights (classifier left on the
    meta device), so the reference packages build their trunk from them."""
    build = getattr(torchvision.models, arch)

    def with_test_weights(**kwargs):
        with torch.device('meta'):
            model = build(weights=None)
        model.features.to_empty(device='cpu')
        model.features.load_state_dict({k[len('features.'):]: v for k, v in state.items()
                                        if k.startswith('features.')})
        return model

    monkeypatch.setattr(torchvision.models, arch, with_test_weights)


@pytest.mark.filterwarnings('ignore::UserWarning')
@pytest.mark.parametrize('net,arch,size', [('alex', 'alexnet', (64, 72)),
                                           ('vgg', 'vgg16', (32, 40))])
def test_lpips_matches_lpips_package(trunks, monkeypatch, net, arch, size):
    lpips = pytest.importorskip('lpips')
    path, state = trunks[arch]
    patch_torchvision_trunk(monkeypatch, arch, state)
    reference = lpips.LPIPS(pretrained=True, net=net, verbose=False)
    pred, gt = image_pair(1, *size)

    def as_input(img):
        return torch.from_numpy(img.transpose(2, 0, 1).copy()).float()[None] / 127.5 - 1

    with torch.no_grad():
        expected = float(reference(as_input(pred), as_input(gt)))
    metric = LPIPS(backbone_path=path, net=net)
    assert metric.process_image(bgr_tensor(gt), bgr_tensor(pred), None) == pytest.approx(
        expected, rel=1e-5)


@pytest.fixture(scope='module')
def dists_calibration(tmp_path_factory) -> Tuple[str, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(5)
    alpha, beta = rng.uniform(0, 0.02, (2, 1, 1475, 1, 1)).astype(np.float32)
    path = tmp_path_factory.mktemp('dists') / 'weights.pt'
    torch.save({'alpha': torch.from_numpy(alpha), 'beta': torch.from_numpy(beta)}, path)
    return str(path), alpha.ravel().astype(np.float64), beta.ravel().astype(np.float64)


def test_dists_matches_reference(trunks, dists_calibration):
    path, state = trunks['vgg16']
    calib_path, alpha, beta = dists_calibration
    metric = METRICS.build(dict(type='DISTS', backbone_path=path, calibration_path=calib_path))
    assert isinstance(metric, DISTS)
    pred, gt = image_pair(2, 32, 32)
    expected = reference_dists(state, alpha, beta, pred, gt)
    metric.process([], [{'gt_img': bgr_tensor(gt), 'output': {'pred_img': bgr_tensor(pred)}}])
    assert expected > 1e-3
    assert metric.compute_metrics(metric.results)['DISTS'] == pytest.approx(expected, abs=1e-6)
    assert metric.process_image(bgr_tensor(gt), bgr_tensor(gt), None) == pytest.approx(0, abs=1e-6)


def test_dists_matches_dists_package(trunks, dists_calibration, monkeypatch):
    dists_pt = pytest.importorskip('DISTS_pytorch.DISTS_pt')
    path, state = trunks['vgg16']
    calib_path, alpha, beta = dists_calibration

    patch_torchvision_trunk(monkeypatch, 'vgg16', state)
    reference = dists_pt.DISTS(load_weights=False)
    reference.alpha.data = torch.from_numpy(alpha).float().view(1, -1, 1, 1)
    reference.beta.data = torch.from_numpy(beta).float().view(1, -1, 1, 1)
    pred, gt = image_pair(3, 32, 32)

    def as_input(img):
        return torch.from_numpy(img.transpose(2, 0, 1).copy()).float()[None] / 255

    expected = float(reference(as_input(gt), as_input(pred)).detach())
    metric = DISTS(backbone_path=path, calibration_path=calib_path)
    assert metric.process_image(bgr_tensor(gt), bgr_tensor(pred), None) == pytest.approx(
        expected, abs=1e-6)


def test_missing_and_wrong_files(trunks, tmp_path):
    missing = str(tmp_path / 'alexnet-owt-7be5be79.pth')
    with pytest.raises(FileNotFoundError, match=r'`backbone_path`.*alexnet-owt-7be5be79\.pth'):
        LPIPS(backbone_path=missing)
    with pytest.raises(FileNotFoundError, match=r'`calibration_path`.*nope\.pth.*lpips'):
        LPIPS(backbone_path=trunks['alexnet'][0], calibration_path=str(tmp_path / 'nope.pth'))
    with pytest.raises(FileNotFoundError, match=r'`backbone_path`.*docs/metrics\.md'):
        DISTS(backbone_path=str(tmp_path / 'vgg16-397923af.pth'))
    with pytest.raises(FileNotFoundError, match=r'`calibration_path`.*DISTS_pytorch'):
        DISTS(backbone_path=trunks['vgg16'][0], calibration_path=str(tmp_path / 'w.pt'))
    with pytest.raises(ValueError, match='alexnet `features'):
        LPIPS(backbone_path=trunks['vgg16'][0], net='alex')
    with pytest.raises(ValueError, match='net must be one of'):
        LPIPS(backbone_path=trunks['alexnet'][0], net='squeeze')


def test_damaged_and_malicious_weight_files_are_refused(trunks, tmp_path):
    """The metrics' weight files are untrusted downloads: loaded as weights only, nothing in
    them runs, and a damaged one is named."""
    marker = tmp_path / 'pwned'
    evil = str(malicious_checkpoint(tmp_path / 'evil.pth', marker))
    with pytest.raises(CheckpointError, match=r'LPIPS `backbone_path` .*evil\.pth was refused'):
        LPIPS(backbone_path=evil)
    with pytest.raises(CheckpointError, match=r'LPIPS `calibration_path` .*evil\.pth was refused'):
        LPIPS(backbone_path=trunks['alexnet'][0], calibration_path=evil)
    with pytest.raises(CheckpointError, match=r'DISTS `calibration_path` .*evil\.pth was refused'):
        DISTS(backbone_path=trunks['vgg16'][0], calibration_path=evil)
    assert not marker.exists()
    half = str(damaged_copies(Path(trunks['vgg16'][0]), tmp_path)['half'])
    with pytest.raises(CheckpointError, match=r'cannot read DISTS `backbone_path` .*half\.pth'):
        DISTS(backbone_path=half)


def test_dists_default_calibration(trunks, monkeypatch):
    """Without `calibration_path` DISTS uses DISTS_pytorch's packaged weights.pt, else says
    where to get it."""
    from hidiff_mm.evaluation.metrics import dists_metric
    packaged = dists_metric.packaged_dists_weights()
    if packaged is not None:
        assert DISTS(backbone_path=trunks['vgg16'][0]).alpha[0].numel() == 3
    monkeypatch.setattr(dists_metric, 'packaged_dists_weights', lambda: None)
    with pytest.raises(FileNotFoundError, match=r'`calibration_path` is None.*DISTS_pytorch'):
        DISTS(backbone_path=trunks['vgg16'][0])
