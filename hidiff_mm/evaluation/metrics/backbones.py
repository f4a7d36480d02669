# Copyright (c) hidiff_mm contributors. All rights reserved.
"""ImageNet trunks for the perceptual metrics, loaded from local torchvision checkpoints."""
from typing import Dict

import torch
import torch.nn as nn
import torchvision

from ...utils.io import load_weights_file
from .image_utils import require_file

# torchvision builder -> the checkpoint file its IMAGENET1K_V1 weights download to
TORCHVISION_FILES = {
    'alexnet': 'alexnet-owt-7be5be79.pth',
    'vgg16': 'vgg16-397923af.pth',
}


def load_state_dict(path: str, key: str, metric: str, how_to_get: str) -> Dict[str, torch.Tensor]:
    """Load a plain state dict (tensors only, nothing executed) after checking that the file
    exists; see :func:`hidiff_mm.utils.load_weights_file`."""
    require_file(path, key, metric, how_to_get)
    return load_weights_file(path, f'{metric} `{key}`')


def load_torchvision_features(arch: str, path: str, metric: str) -> nn.Sequential:
    """torchvision ``<arch>().features`` with the ``features.*`` weights of ``path``, frozen.

    The network is built on the meta device (no random init, no classifier
    memory) and only its ``features`` part is materialised; torchvision's
    downloader is never used.

    Args:
        arch: 'alexnet' or 'vgg16'.
        path: torchvision-format state dict (keys ``features.0.weight`` ...), e.g.
            the ImageNet checkpoint ``TORCHVISION_FILES[arch]``; other keys are ignored.
        metric: metric name for error messages.
    """
    how_to_get = (f'It must be a torchvision-format {arch} state dict, e.g. torchvision\'s '
                  f'ImageNet checkpoint {TORCHVISION_FILES[arch]}.')
    state = load_state_dict(path, 'backbone_path', metric, how_to_get)
    features_state = {k[len('features.'):]: v for k, v in state.items()
                      if k.startswith('features.')}
    with torch.device('meta'):
        features = getattr(torchvision.models, arch)(weights=None).features
    features.to_empty(device='cpu')
    try:
        features.load_state_dict(features_state, strict=True)
    except RuntimeError as err:
        raise ValueError(f'{metric}: `backbone_path` {path!r} does not hold the {arch} '
                         f'`features.*` weights. {how_to_get}\n{err}') from err
    return features.eval().requires_grad_(False)
