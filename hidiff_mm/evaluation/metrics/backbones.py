# Copyright (c) hidiff_mm contributors. All rights reserved.
"""ImageNet trunks for the perceptual metrics, loaded from local torchvision checkpoints."""
from typing import Dict

import torch
import torch.nn as nn

from hidiff_mm.utils.torchvision_weights import (TORCHVISION_FILES, features_layout,
                                                 load_local_state_dict)
from ...utils.errors import InputError
from .image_utils import WEIGHTS_DOC


def load_state_dict(path: str, key: str, metric: str, how_to_get: str) -> Dict[str, torch.Tensor]:
    """A plain state dict from ``path`` (see ``load_local_state_dict``), errors pointing to the
    metrics docs."""
    return load_local_state_dict(path, key, metric, f'{how_to_get} See {WEIGHTS_DOC} for how to '
                                 'obtain it.')


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
    features = features_layout(arch)
    features.to_empty(device='cpu')
    try:
        features.load_state_dict(features_state, strict=True)
    except RuntimeError as err:
        raise InputError(f'{metric}: `backbone_path` {path!r} does not hold the {arch} '
                         f'`features.*` weights. {how_to_get}\n{err}') from err
    return features.eval().requires_grad_(False)
