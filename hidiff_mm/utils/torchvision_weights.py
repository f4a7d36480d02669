# Copyright (c) hidiff_mm contributors. All rights reserved.
"""ImageNet trunks of torchvision from local checkpoint files (nothing is ever downloaded), for
the perceptual loss and the perceptual metrics."""
import os.path as osp
from typing import Dict, Optional

import torch
import torch.nn as nn
import torchvision

from .errors import ConfigError
from .io import load_weights_file

# torchvision builder -> the file its IMAGENET1K_V1 weights download to
TORCHVISION_FILES = {
    'alexnet': 'alexnet-owt-7be5be79.pth',
    'vgg11': 'vgg11-8a719046.pth',
    'vgg13': 'vgg13-19584684.pth',
    'vgg16': 'vgg16-397923af.pth',
    'vgg19': 'vgg19-dcbb9e9d.pth',
}
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def features_layout(arch: str) -> nn.Sequential:
    """torchvision ``<arch>().features`` on the meta device: the layers, no weights, no memory."""
    if arch not in TORCHVISION_FILES:
        raise ConfigError(f'arch must be one of {sorted(TORCHVISION_FILES)}, got {arch!r}')
    with torch.device('meta'):
        return getattr(torchvision.models, arch)(weights=None).features


def load_local_state_dict(path: Optional[str], key: str, owner: str,
                          how_to_get: str) -> Dict[str, torch.Tensor]:
    """A plain state dict (tensors only; nothing in the file runs) after checking the file
    exists (:func:`hidiff_mm.utils.io.load_weights_file`).

    Raises:
        FileNotFoundError: naming the config ``key``, the path and ``how_to_get``.
        CheckpointError: the file is damaged or asks to load anything but weights.
    """
    if path is None or not osp.isfile(path):
        raise FileNotFoundError(f'{owner}: `{key}` is {path!r}, which is not an existing file. '
                                f'{how_to_get} Nothing is downloaded.')
    return load_weights_file(path, f'{owner} `{key}`')
