# Copyright (c) hidiff_mm contributors. All rights reserved.
"""High-level inference: build a model from a config, deblur images (paths or BGR arrays).

Prediction is the official blind procedure (``HIDiff.forward_tensor``): reflect-pad to a
multiple of 8, sample the prior from ``z_T ~ N(0, I)`` (the only random draw) with the stage-2
encoder and the denoiser, run the Transformer with that prior, crop. On top of it:

* ``seed``: a ``torch.Generator`` seeded with it draws ``z_T`` (else the global RNG);
* ``steps``: fewer sampler steps (an evenly spaced subsequence of the T trained steps);
* ``tile`` / ``overlap``: the Transformer runs tile by tile with one prior computed from the
  whole image (see :mod:`hidiff_mm.apis.tiling`);
* ``self_ensemble``: the x8 dihedral self-ensemble.
"""
import copy
import os
import os.path as osp
import warnings
from pathlib import Path
from typing import List, Optional, Tuple, Union

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from ..utils.checkpoint_globals import mmengine_checkpoint_globals
from .tiling import check_tile, tiled_apply

ImageLike = Union[str, Path, np.ndarray]
IMAGE_EXTENSIONS = ('.png', '.jpg', '.jpeg', '.bmp', '.tif', '.tiff', '.webp', '.ppm', '.pgm')


def init_model(config, checkpoint: Optional[str] = None, device: Union[str, torch.device] = 'cpu',
               cfg_options: Optional[dict] = None) -> torch.nn.Module:
    """Build a HI-Diff model from a config and load its weights.

    Args:
        config: config file path, or an ``mmengine.Config``.
        checkpoint: an MMEngine checkpoint (``{'state_dict': ...}``, as written by training or
            by ``tools/convert_official_checkpoint.py``) or a bare state dict. ``None`` keeps
            the random initialisation (for tests and benchmarks).
        device: where the model runs.
        cfg_options: overrides merged into the config (as ``--cfg-options`` does).

    Returns:
        The model in eval mode on ``device``, with the config as ``model.cfg``.

    Raises:
        FileNotFoundError: the config or the checkpoint does not exist.
        ValueError: the checkpoint is an unconverted official file or lacks weights that
            prediction needs. The stage-1 encoder (``prior_head.encoder_s1``) is not needed
            and may be missing, as in converted official test checkpoints.
    """
    from mmagic.registry import MODELS
    from mmagic.utils import register_all_modules
    from mmengine.config import Config
    register_all_modules(init_default_scope=True)
    if isinstance(config, (str, Path)):
        if not osp.isfile(config):
            raise FileNotFoundError(f'config file not found: {config}')
        cfg = Config.fromfile(str(config))
    elif isinstance(config, Config):
        cfg = copy.deepcopy(config) if cfg_options else config
    else:
        raise TypeError(f'config must be a path or an mmengine Config, got {type(config)}')
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    model = MODELS.build(cfg.model)
    if checkpoint is not None:
        load_weights(model, checkpoint)
    model.cfg = cfg
    return model.to(device).eval()


def load_weights(model: torch.nn.Module, checkpoint: Union[str, Path]) -> None:
    """Load ``checkpoint`` into ``model`` (see :func:`init_model` for what is accepted)."""
    checkpoint = str(checkpoint)
    if not osp.isfile(checkpoint):
        raise FileNotFoundError(
            f'checkpoint not found: {checkpoint} (official HI-Diff files must first be '
            'converted with tools/convert_official_checkpoint.py; see configs/hidiff/README.md)')
    with mmengine_checkpoint_globals():
        state = torch.load(checkpoint, map_location='cpu', weights_only=True)
    if isinstance(state, dict) and 'state_dict' in state:
        state = state['state_dict']
    if not isinstance(state, dict):
        raise ValueError(f'{checkpoint}: not a state dict or an MMEngine checkpoint')
    if 'params' in state and isinstance(state['params'], dict):
        raise ValueError(f'{checkpoint} is an official BasicSR file ({{"params": ...}}); convert '
                         'it first: python tools/convert_official_checkpoint.py net_g.pth '
                         'net_le_dm.pth net_d.pth --out <converted>.pth')
    state = {k[len('module.'):] if k.startswith('module.') else k: v for k, v in state.items()}
    missing, unexpected = model.load_state_dict(state, strict=False)
    needed = [k for k in missing if not k.startswith('prior_head.encoder_s1.')]
    if needed:
        raise ValueError(f'{checkpoint} lacks {len(needed)} weights that prediction needs, '
                         f'e.g. {needed[:5]}; is it a checkpoint of this model/config?')
    if unexpected:
        warnings.warn(f'{checkpoint}: {len(unexpected)} unexpected keys ignored, e.g. '
                      f'{unexpected[:5]}')


# --------------------------------------------------------------------------------------------
# images


def read_image(path: Union[str, Path]) -> np.ndarray:
    """Read an image file as BGR uint8 ``(H, W, 3)`` (grayscale, alpha and 16-bit converted).

    Raises ``FileNotFoundError`` / ``ValueError`` naming the file when it is missing or cannot
    be decoded.
    """
    path = str(path)
    if not osp.isfile(path):
        raise FileNotFoundError(f'image not found: {path}')
    data = np.fromfile(path, dtype=np.uint8)  # works for non-ASCII paths, unlike cv2.imread
    img = cv2.imdecode(data, cv2.IMREAD_UNCHANGED) if data.size else None
    if img is None:
        raise ValueError(f'cannot read image {path}: OpenCV cannot decode it '
                         '(not an image file, truncated, or an unsupported format)')
    return to_bgr_uint8(img, name=path)


def to_bgr_uint8(img: np.ndarray, name: str = 'image') -> np.ndarray:
    """Convert a numpy image to BGR uint8 ``(H, W, 3)``.

    Accepts ``(H, W)`` / ``(H, W, 1)`` grayscale, ``(H, W, 3)`` BGR and ``(H, W, 4)`` BGRA (the
    alpha channel is dropped, as ``cv2.IMREAD_COLOR`` does), uint8 or uint16 (scaled by
    1/257).
    """
    if not isinstance(img, np.ndarray):
        raise TypeError(f'{name}: expected a numpy array, got {type(img).__name__}')
    if img.dtype == np.uint16:
        img = np.round(img / 257.0).astype(np.uint8)
    elif img.dtype != np.uint8:
        raise TypeError(f'{name}: expected a uint8 (or uint16) image, got dtype {img.dtype}')
    if img.ndim == 3 and img.shape[2] == 1:
        img = img[..., 0]
    if img.ndim == 2:
        img = cv2.cvtColor(img, cv2.COLOR_GRAY2BGR)
    elif img.ndim == 3 and img.shape[2] == 4:
        img = cv2.cvtColor(img, cv2.COLOR_BGRA2BGR)
    elif not (img.ndim == 3 and img.shape[2] == 3):
        raise ValueError(f'{name}: expected an (H, W), (H, W, 1), (H, W, 3) or (H, W, 4) '
                         f'image, got shape {img.shape}')
    if min(img.shape[:2]) < 8:
        raise ValueError(f'{name}: image is {img.shape[1]}x{img.shape[0]}; both sides must be '
                         'at least 8 pixels')
    return np.ascontiguousarray(img)


def load_input(image: ImageLike) -> Tuple[np.ndarray, str]:
    """``(BGR uint8 image, name)`` from a path or an array."""
    if isinstance(image, (str, Path)):
        return read_image(image), str(image)
    return to_bgr_uint8(image), 'image'


def list_images(folder: Union[str, Path]) -> List[str]:
    """The image files (by extension) directly inside ``folder``, sorted by name."""
    folder = str(folder)
    if not osp.isdir(folder):
        raise FileNotFoundError(f'folder not found: {folder}')
    return sorted(osp.join(folder, f) for f in os.listdir(folder)
                  if f.lower().endswith(IMAGE_EXTENSIONS) and osp.isfile(osp.join(folder, f)))


def _norm(model: torch.nn.Module) -> Tuple[torch.Tensor, torch.Tensor]:
    pre = model.data_preprocessor
    return pre.mean.view(1, -1, 1, 1).float(), pre.std.view(1, -1, 1, 1).float()


def image_to_tensor(model: torch.nn.Module, img: np.ndarray) -> torch.Tensor:
    """BGR uint8 ``(H, W, 3)`` -> the model's input ``(1, 3, H, W)`` (RGB, normalised by the
    model's data preprocessor, e.g. [0, 1] for mean 0 / std 255), on the model's device."""
    mean, std = _norm(model)
    rgb = torch.from_numpy(np.ascontiguousarray(img[..., ::-1])).permute(2, 0, 1)[None].float()
    device = model_device(model)
    return (rgb.to(device) - mean.to(device)) / std.to(device)


def tensor_to_image(model: torch.nn.Module, tensor: torch.Tensor) -> np.ndarray:
    """The model's output ``(1, 3, H, W)`` -> BGR uint8 ``(H, W, 3)`` (clamped, rounded)."""
    mean, std = _norm(model)
    rgb = tensor.float() * std.to(tensor.device) + mean.to(tensor.device)
    rgb = rgb[0].clamp(0, 255).round().to(torch.uint8).permute(1, 2, 0).cpu().numpy()
    return np.ascontiguousarray(rgb[..., ::-1])


def model_device(model: torch.nn.Module) -> torch.device:
    return next(model.parameters()).device


# --------------------------------------------------------------------------------------------
# tensors


def pad_to_multiple(x: torch.Tensor, multiple: int) -> torch.Tensor:
    """Reflect-pad bottom/right to a multiple of ``multiple`` (as ``HIDiff.forward_tensor``)."""
    pad_h, pad_w = (-x.shape[-2]) % multiple, (-x.shape[-1]) % multiple
    return F.pad(x, (0, pad_w, 0, pad_h), 'reflect') if pad_h or pad_w else x


def sample_prior(model: torch.nn.Module, padded: torch.Tensor,
                 generator: Optional[torch.Generator] = None, steps: Optional[int] = None,
                 return_intermediates: bool = False):
    """The blind prior of a padded image with ``steps`` sampler steps (None: all T); one
    ``z_T ~ N(0, I)`` draw either way."""
    head = model.prior_head
    if steps is not None:
        head.scheduler.inference_timesteps(steps)  # validates steps before any work
    return head.sample(padded, generator=generator, return_intermediates=return_intermediates,
                       num_inference_steps=steps)


def dihedral(x: torch.Tensor, flag: int) -> torch.Tensor:
    """Transform ``flag = 2k + f`` of the dihedral group on the last two axes: rotate by
    ``k * 90`` degrees counter-clockwise, then flip up-down if ``f`` (``RandomDihedral``)."""
    x = torch.rot90(x, flag // 2, dims=(-2, -1))
    return x.flip(-2) if flag % 2 else x


def dihedral_inverse(x: torch.Tensor, flag: int) -> torch.Tensor:
    """The inverse of :func:`dihedral`."""
    if flag % 2:
        x = x.flip(-2)
    return torch.rot90(x, -(flag // 2), dims=(-2, -1))


def predict_tensor(model: torch.nn.Module,
                   inputs: torch.Tensor,
                   generator: Optional[torch.Generator] = None,
                   tile: Optional[int] = None,
                   overlap: int = 32,
                   steps: Optional[int] = None,
                   self_ensemble: bool = False) -> torch.Tensor:
    """Blind prediction on model-space tensors ``(B, 3, H, W) -> (B, 3, H, W)``.

    With the defaults this is exactly ``model.forward_tensor(inputs, generator=generator)``.
    ``tile``: the prior is sampled once from the whole padded image, then the Transformer runs on
    ``tile x tile`` windows overlapping by ``overlap`` pixels with that prior, blended with linear
    ramps. ``self_ensemble``: the mean of the predictions of the 8 dihedral transforms of the
    input, each transformed back (each transform samples its own prior: 8 draws of ``z_T``).
    """
    if tile is not None:
        check_tile(tile, overlap, model.pad_multiple)
    with torch.no_grad():
        if not self_ensemble:
            return _predict_once(model, inputs, generator, tile, overlap, steps)
        out = None
        for flag in range(8):
            pred = dihedral_inverse(
                _predict_once(model, dihedral(inputs, flag), generator, tile, overlap, steps),
                flag)
            out = pred if out is None else out + pred
        return out / 8


def _predict_once(model, inputs, generator, tile, overlap, steps) -> torch.Tensor:
    h, w = inputs.shape[-2:]
    padded = pad_to_multiple(inputs, model.pad_multiple)
    prior = sample_prior(model, padded, generator, steps)
    if tile is None:
        out = model.generator(padded, prior)
    else:
        out = tiled_apply(lambda t: model.generator(t, prior), padded, tile, overlap,
                          model.pad_multiple)
    return out[..., :h, :w]


def make_generator(model: torch.nn.Module, seed: Optional[int]) -> Optional[torch.Generator]:
    """A ``torch.Generator`` on the model's device seeded with ``seed`` (``None``: none)."""
    if seed is None:
        return None
    return torch.Generator(device=model_device(model)).manual_seed(int(seed))


def deblur(model: torch.nn.Module,
           image: ImageLike,
           seed: Optional[int] = None,
           tile: Optional[int] = None,
           overlap: int = 32,
           steps: Optional[int] = None,
           self_ensemble: bool = False) -> np.ndarray:
    """Deblur one image.

    Args:
        model: a model from :func:`init_model`.
        image: a file path, or a numpy image: BGR uint8 ``(H, W, 3)``; grayscale ``(H, W)`` /
            ``(H, W, 1)`` and BGRA ``(H, W, 4)`` (alpha dropped) are converted, uint16 scaled.
        seed: seeds the one random draw (``z_T``); the same seed gives the same output. ``None``
            draws from torch's global RNG.
        tile: run the Transformer on ``tile x tile`` windows (a multiple of 8) with one prior
            for the whole image; ``None`` runs the whole image at once.
        overlap: overlap of neighbouring tiles in pixels (blended with linear ramps).
        steps: sampler steps (1..T, evenly spaced); ``None`` runs all T trained steps.
        self_ensemble: average the 8 dihedral transforms (8x the cost).

    Returns:
        The deblurred image, BGR uint8 ``(H, W, 3)``.
    """
    img, _ = load_input(image)
    inputs = image_to_tensor(model, img)
    out = predict_tensor(model, inputs, make_generator(model, seed), tile, overlap, steps,
                         self_ensemble)
    return tensor_to_image(model, out)
