# Copyright (c) hidiff_mm contributors. All rights reserved.
"""VGG perceptual loss from a local torchvision checkpoint (MMagic's ``PerceptualLoss`` downloads).

MMagic 1.2.0's ``PerceptualLoss`` builds ``torchvision.models.vgg19(pretrained=True)`` whatever
its ``pretrained`` argument says, so it needs the internet at construction. ``LocalPerceptualLoss``
takes the same arguments and returns the same ``(perceptual, style)`` tuple, but reads the VGG
weights from a torchvision-format state dict on disk (``vgg_path``) and never downloads.
"""
from typing import Dict, List, Optional, Sequence, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmagic.registry import MODELS

from hidiff_mm.utils.torchvision_weights import (IMAGENET_MEAN, IMAGENET_STD, TORCHVISION_FILES,
                                                 features_layout, load_local_state_dict)
from ...utils.errors import ConfigError

DOC = 'docs/perceptual.md'


def _vgg_features_meta(vgg_type: str) -> nn.Sequential:
    if not vgg_type.startswith('vgg'):
        raise ConfigError(f'vgg_type must be a VGG (vgg11, vgg13, vgg16, vgg19), got {vgg_type!r}')
    return features_layout(vgg_type)


def vgg_layer_names(vgg_type: str = 'vgg19') -> Dict[str, int]:
    """Names of torchvision's ``<vgg_type>().features`` layers -> their index.

    ``conv{i}_{j}``: the j-th convolution of block i (before its ReLU; block i ends with the i-th
    max-pooling), ``relu{i}_{j}``: its activation, ``pool{i}``: the i-th max-pooling. For VGG-19:
    conv1_2 = 2, conv2_2 = 7, conv3_4 = 16, conv4_4 = 25, conv5_4 = 34, relu5_4 = 35.
    """
    names, block, conv = {}, 1, 0
    for idx, layer in enumerate(_vgg_features_meta(vgg_type)):
        if isinstance(layer, nn.Conv2d):
            conv += 1
            names[f'conv{block}_{conv}'] = idx
        elif isinstance(layer, nn.ReLU):
            names[f'relu{block}_{conv}'] = idx
        elif isinstance(layer, nn.MaxPool2d):
            names[f'pool{block}'] = idx
            block, conv = block + 1, 0
    return names


def resolve_layer(name, vgg_type: str = 'vgg19') -> int:
    """A layer given by name ('conv5_4') or by torchvision index (34 or '34', MMagic's style)."""
    names = vgg_layer_names(vgg_type)
    if isinstance(name, int) or (isinstance(name, str) and name.isdigit()):
        idx = int(name)
        if idx not in names.values():
            raise ConfigError(f'{vgg_type} features have no layer {idx} (0..{max(names.values())})')
        return idx
    if name not in names:
        raise ConfigError(f'unknown {vgg_type} layer {name!r}; use conv<i>_<j>, relu<i>_<j>, '
                          f'pool<i> or a torchvision features index, e.g. conv5_4 = '
                          f'{names.get("conv5_4", "n/a")}')
    return names[name]


def load_vgg_state(path: Optional[str], vgg_type: str, key: str = 'vgg_path') -> dict:
    """Check that ``path`` exists and load it as a plain state dict (tensors only)."""
    return load_local_state_dict(
        path, key, 'LocalPerceptualLoss',
        f'(model.perceptual_loss.{key} in the HI-Diff-PE configs.) It must be a '
        f'torchvision-format {vgg_type} state dict (keys features.0.weight, ...), e.g. '
        f"torchvision's ImageNet checkpoint {TORCHVISION_FILES.get(vgg_type, '')} (found in "
        f'$TORCH_HOME/hub/checkpoints/ on machines that downloaded it). See {DOC}.')


class LocalVGGFeatures(nn.Module):
    """Frozen torchvision VGG ``features`` up to the deepest requested layer.

    The weights are non-persistent buffers: they move with ``.to()``, are never trained, never
    counted as parameters (so ``MMSeparateDistributedDataParallel`` leaves the loss unwrapped and
    optimizers never see them) and never written to, or expected in, checkpoints.

    Args:
        vgg_path: torchvision-format state dict of ``vgg_type`` (``features.*`` keys are used).
        layers: layers to return (names or indices, see :func:`vgg_layer_names`).
        vgg_type: 'vgg11', 'vgg13', 'vgg16' or 'vgg19' (no batch-norm variants).
        use_input_norm: normalise [0, 1] RGB inputs with the ImageNet mean/std.
    """

    def __init__(self, vgg_path: str, layers: Sequence, vgg_type: str = 'vgg19',
                 use_input_norm: bool = True) -> None:
        super().__init__()
        self.taps = {resolve_layer(name, vgg_type): str(name) for name in layers}
        last = max(self.taps)
        state = load_vgg_state(vgg_path, vgg_type)
        self.ops: List[tuple] = []
        for idx, layer in enumerate(_vgg_features_meta(vgg_type)[:last + 1]):
            if isinstance(layer, nn.Conv2d):
                for part in ('weight', 'bias'):
                    key = f'features.{idx}.{part}'
                    expected = tuple(getattr(layer, part).shape)
                    if key not in state or tuple(state[key].shape) != expected:
                        got = tuple(state[key].shape) if key in state else 'missing'
                        raise ConfigError(
                            f'LocalPerceptualLoss: `vgg_path` {vgg_path!r} is not a '
                            f'torchvision {vgg_type} state dict: {key} is {got}, expected '
                            f'{expected}. See {DOC}.')
                    self.register_buffer(f'{part}{idx}', state[key].detach().float().clone(),
                                         persistent=False)
                self.ops.append(('conv', idx, layer.stride, layer.padding))
            elif isinstance(layer, nn.ReLU):
                self.ops.append(('relu', idx))
            elif isinstance(layer, nn.MaxPool2d):
                self.ops.append(('pool', idx, layer.kernel_size, layer.stride))
            else:
                raise TypeError(f'unexpected layer {layer!r} in {vgg_type} features')
        self.use_input_norm = use_input_norm
        self.register_buffer('mean', torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1),
                             persistent=False)
        self.register_buffer('std', torch.tensor(IMAGENET_STD).view(1, 3, 1, 1),
                             persistent=False)

    def forward(self, x: torch.Tensor) -> Dict[str, torch.Tensor]:
        """x: (N, 3, H, W) RGB in [0, 1] -> {layer name as given: feature map}."""
        if self.use_input_norm:
            x = (x - self.mean) / self.std
        out = {}
        for op in self.ops:
            kind, idx = op[0], op[1]
            if kind == 'conv':
                x = F.conv2d(x, getattr(self, f'weight{idx}'), getattr(self, f'bias{idx}'),
                             stride=op[2], padding=op[3])
            elif kind == 'relu':
                x = F.relu(x)
            else:
                x = F.max_pool2d(x, op[2], op[3])
            if idx in self.taps:
                out[self.taps[idx]] = x
        return out


@MODELS.register_module()
class LocalPerceptualLoss(nn.Module):
    """VGG perceptual (and optional style) loss with local weights; no download.

    ``perceptual = perceptual_weight * sum_k w_k * criterion(phi_k(x), phi_k(gt))`` with
    ``phi_k`` the VGG feature map of layer k (gt features under no_grad), and the style loss the
    same over Gram matrices. Same arguments and ``(perceptual, style)`` return value as MMagic's
    ``PerceptualLoss`` (a term is None when its weight is 0), so it can replace it in MMagic's
    SRGAN/ESRGAN configs too; the defaults differ: no style loss, inputs already in [0, 1].

    Args:
        vgg_path: local torchvision-format VGG state dict (required), e.g.
            ``checkpoints/vgg19-dcbb9e9d.pth``; FileNotFoundError names this key if missing.
        layer_weights: ``{layer: weight}``; layers by name ('conv5_4' = the 4th convolution
            before the 5th max-pooling, before its ReLU, as in ESRGAN) or torchvision index
            ('34'). Default ``{'conv5_4': 1.0}``.
        layer_weights_style: layers of the style loss (default: ``layer_weights``).
        vgg_type: torchvision VGG variant. Default 'vgg19'.
        use_input_norm: ImageNet mean/std normalisation of [0, 1] RGB inputs. Default True.
        perceptual_weight: factor of the perceptual term (lambda). Default 1.0.
        style_weight: factor of the style term. Default 0 (off).
        norm_img: map inputs from [-1, 1] to [0, 1] first. Default False.
        criterion: 'l1' (default) or 'mse', mean over all elements.
    """

    def __init__(self,
                 vgg_path: str,
                 layer_weights: Optional[dict] = None,
                 layer_weights_style: Optional[dict] = None,
                 vgg_type: str = 'vgg19',
                 use_input_norm: bool = True,
                 perceptual_weight: float = 1.0,
                 style_weight: float = 0.0,
                 norm_img: bool = False,
                 criterion: str = 'l1') -> None:
        super().__init__()
        self.layer_weights = {str(k): float(v) for k, v in
                              (layer_weights or {'conv5_4': 1.0}).items()}
        self.layer_weights_style = {str(k): float(v) for k, v in
                                    (layer_weights_style or self.layer_weights).items()}
        self.perceptual_weight = perceptual_weight
        self.style_weight = style_weight
        self.norm_img = norm_img
        if criterion.lower() not in ('l1', 'mse'):
            raise ConfigError(f'criterion must be l1 or mse, got {criterion!r}')
        self.criterion = F.l1_loss if criterion.lower() == 'l1' else F.mse_loss
        layers = list(self.layer_weights)
        if style_weight > 0:
            layers += [k for k in self.layer_weights_style if k not in self.layer_weights]
        self.vgg = LocalVGGFeatures(vgg_path, layers, vgg_type, use_input_norm)

    def forward(self, x: torch.Tensor,
                gt: torch.Tensor) -> Tuple[Optional[torch.Tensor], Optional[torch.Tensor]]:
        """x, gt: (N, 3, H, W) RGB in [0, 1] (or [-1, 1] with ``norm_img``)."""
        if self.norm_img:
            x, gt = (x + 1.) * 0.5, (gt + 1.) * 0.5
        x_feats = self.vgg(x)
        with torch.no_grad():
            gt_feats = self.vgg(gt.detach())
        percep = style = None
        if self.perceptual_weight > 0:
            percep = sum(self.criterion(x_feats[k], gt_feats[k]) * w
                         for k, w in self.layer_weights.items()) * self.perceptual_weight
        if self.style_weight > 0:
            style = sum(self.criterion(self._gram(x_feats[k]), self._gram(gt_feats[k])) * w
                        for k, w in self.layer_weights_style.items()) * self.style_weight
        return percep, style

    @staticmethod
    def _gram(x: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        feats = x.reshape(n, c, h * w)
        return feats.bmm(feats.transpose(1, 2)) / (c * h * w)
