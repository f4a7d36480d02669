# Copyright (c) hidiff_mm contributors. All rights reserved.
"""High-level inference, a thin layer over the editor: build a model from a config, read an
image, convert it to the model's input, predict with ``HIDiff.forward_tensor`` (the one
prediction path: padding, prior sampling, tiling, self-ensemble, see
:class:`hidiff_mm.models.editors.prediction.PredictionOptions`), convert the result back.
``seed`` seeds a ``torch.Generator`` that draws ``z_T`` (else torch's global RNG). Images of any
size from 1x1 up are predicted (see :func:`hidiff_mm.models.editors.prediction.pad_to_multiple`).
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
from mmengine.logging import print_log

from ..models.layers import convert_for_device
from ..utils.checkpoint import check_fits, state_dict_of
from ..utils.cli import user_input
from ..utils.errors import InputError
from ..utils.io import load_weights_file
from ..utils.training_record import check_record, has_prior_head

ImageInput = Union[str, Path, np.ndarray]
IMAGE_EXTENSIONS = ('.png', '.jpg', '.jpeg', '.bmp', '.tif', '.tiff', '.webp', '.ppm', '.pgm')


def init_model(config, checkpoint: Optional[str] = None, device: Union[str, torch.device] = 'cpu',
               cfg_options: Optional[dict] = None) -> torch.nn.Module:
    """Build a HI-Diff model from a config and load its weights.

    Args:
        config: config file path, or an ``mmengine.Config``.
        checkpoint: an MMEngine checkpoint (``{'state_dict': ...}``, as written by training or
            by ``tools/convert_official_checkpoint.py``) or a bare state dict. ``None`` keeps
            the random initialisation (for tests and benchmarks). Its record (training stage,
            diffusion settings: :mod:`hidiff_mm.utils.training_record`) is checked against
            the config; what differs is logged with what is done, a file without a record is
            loaded unchecked (logged).
        device: where the model runs.
        cfg_options: overrides merged into the config (as ``--cfg-options`` does).

    Returns:
        The model in eval mode on ``device``, with the config as ``model.cfg``, converted for
        ``device`` (``convert_for_device``: by default the fast form of the blocks on the CPU,
        the exact form elsewhere; ``print(model)`` names it).

    Raises:
        FileNotFoundError: the config or the checkpoint does not exist.
        ValueError: the device is not available here, or the checkpoint is unreadable
            (``CheckpointError``), an unconverted official file, was trained with another T,
            beta schedule or parameterisation than the config's, or lacks weights that
            prediction needs or has weights of other shapes. The stage-1 encoder
            (``prior_head.encoder_s1``) is not needed and may be missing, as in converted
            official test checkpoints, unless the config asks for ``oracle_prior=True``.
    """
    device = check_device(device)
    from mmagic.registry import MODELS
    from mmagic.utils import register_all_modules
    from mmengine.config import Config
    register_all_modules(init_default_scope=True)
    if isinstance(config, (str, Path)):
        if not osp.isfile(config):
            raise FileNotFoundError(f'config file not found: {config}')
        with user_input(f'config {config}'):
            cfg = Config.fromfile(str(config))
    elif isinstance(config, Config):
        cfg = copy.deepcopy(config) if cfg_options else config
    else:
        raise TypeError(f'config must be a path or an mmengine Config, got {type(config)}')
    if cfg_options:
        with user_input('cfg_options'):
            cfg.merge_from_dict(cfg_options)
    model = MODELS.build(cfg.model)
    if checkpoint is not None:
        load_weights(model, checkpoint)
    model.cfg = cfg
    return convert_for_device(model.to(device), device).eval()


def check_device(device: Union[str, torch.device]) -> torch.device:
    """``torch.device(device)``, or ``ValueError`` if it is malformed or absent on this machine."""
    try:
        device = torch.device(device)
    except (RuntimeError, TypeError) as err:
        raise InputError(f"invalid device {device!r} (e.g. 'cpu', 'cuda', 'cuda:1'): {err}")
    if device.type == 'cuda' and not torch.cuda.is_available():
        raise InputError(f"device '{device}' was asked for, but CUDA is not available here; "
                         "use --device cpu")
    if device.type == 'cuda' and device.index is not None and \
            device.index >= torch.cuda.device_count():
        raise InputError(f"device '{device}' does not exist: this machine has "
                         f'{torch.cuda.device_count()} CUDA device(s)')
    return device


def load_weights(model: torch.nn.Module, checkpoint: Union[str, Path]) -> None:
    """Load ``checkpoint`` into ``model`` (see :func:`init_model` for what is accepted) and
    check its record against the model (:func:`~hidiff_mm.utils.training_record.check_record`),
    logging each line."""
    checkpoint = str(checkpoint)
    if not osp.exists(checkpoint):
        raise FileNotFoundError(
            f'checkpoint not found: {checkpoint} (official HI-Diff files must first be '
            'converted with tools/convert_official_checkpoint.py; see configs/hidiff/README.md)')
    raw = load_weights_file(checkpoint)
    if isinstance(raw, dict) and isinstance(raw.get('params'), dict):
        raise InputError(f'{checkpoint} is an official BasicSR file ({{"params": ...}}); convert '
                         'it first: python tools/convert_official_checkpoint.py net_g.pth '
                         'net_le_dm.pth net_d.pth --out <converted>.pth')
    state = state_dict_of(raw, checkpoint)
    if has_prior_head(model):
        meta = raw.get('meta') if isinstance(raw, dict) and 'state_dict' in raw else None
        for line in check_record(model, meta, checkpoint):
            print_log(line, logger='current')
    oracle = getattr(model, 'oracle_prior', False)
    check_fits(model, state, checkpoint, optional=[] if oracle else ['prior_head.encoder_s1.'])
    _, unexpected = model.load_state_dict(state, strict=False)
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
        raise InputError(f'cannot read image {path}: OpenCV cannot decode it '
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
        raise InputError(f'{name}: expected an (H, W), (H, W, 1), (H, W, 3) or (H, W, 4) '
                         f'image, got shape {img.shape}')
    if min(img.shape[:2]) < 1:
        raise InputError(f'{name}: image is {img.shape[1]}x{img.shape[0]} (WxH) and has no '
                         'pixels')
    return np.ascontiguousarray(img)


def load_input(image: ImageInput) -> Tuple[np.ndarray, str]:
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
    model's data preprocessor, e.g. [0, 1] for mean 0 / std 255), on the model's device.

    Contiguous, as MMagic's data pipeline gives it: a channels-last view makes the convolutions
    take other kernels, whose results differ in the last bits."""
    mean, std = _norm(model)
    rgb = torch.from_numpy(np.ascontiguousarray(img[..., ::-1])).permute(2, 0, 1)[None]
    rgb = rgb.contiguous().float()
    device = model_device(model)
    return (rgb.to(device) - mean.to(device)) / std.to(device)


def tensor_to_image(model: torch.nn.Module, tensor: torch.Tensor) -> np.ndarray:
    """The model's output ``(1, 3, H, W)`` -> BGR uint8 ``(H, W, 3)`` (clamped, rounded).

    Rounded in the float32 steps of MMagic's inferencers (``tensor2img(pred_img / 255.)``), so
    that MMagic's inference API writes the same bytes: rounding ``pred_img`` directly differs
    at a ``.5`` tie that ``/ 255 * 255`` moves (about one pixel in 5,000)."""
    mean, std = _norm(model)
    rgb = tensor.float() * std.to(tensor.device) + mean.to(tensor.device)
    rgb = ((rgb[0] / 255.).clamp(0, 1) * 255.).round().to(torch.uint8)
    rgb = rgb.permute(1, 2, 0).cpu().numpy()
    return np.ascontiguousarray(rgb[..., ::-1])


def model_device(model: torch.nn.Module) -> torch.device:
    return next(model.parameters()).device


def make_generator(model: torch.nn.Module, seed: Optional[int]) -> Optional[torch.Generator]:
    """A ``torch.Generator`` on the model's device seeded with ``seed`` (``None``: none)."""
    if seed is None:
        return None
    return torch.Generator(device=model_device(model)).manual_seed(int(seed))


def deblur(model: torch.nn.Module,
           image: ImageInput,
           seed: Optional[int] = None,
           tile: Optional[int] = None,
           overlap: Optional[int] = None,
           steps: Optional[int] = None,
           self_ensemble: Optional[bool] = None,
           precision: Optional[str] = None) -> np.ndarray:
    """Deblur one image: read it, convert it to the model's input, run the editor's prediction
    (``model.forward_tensor``), convert back.

    Args:
        model: a model from :func:`init_model`.
        image: a file path, or a numpy image: BGR uint8 ``(H, W, 3)``; grayscale ``(H, W)`` /
            ``(H, W, 1)`` and BGRA ``(H, W, 4)`` (alpha dropped) are converted, uint16 scaled.
        seed: seeds the one random draw (``z_T``); the same seed gives the same output. ``None``
            keeps the model's (``test_cfg.seed``, else torch's global RNG).
        tile, overlap, steps, self_ensemble, precision: the prediction options (``tile``,
            ``tile_overlap``, ``steps``, ``self_ensemble``, ``precision`` of ``HIDiff``'s
            ``test_cfg``); ``None`` keeps the model's. ``tile``: run the Transformer on
            ``tile x tile`` windows (a multiple of 8) with one prior for the whole image;
            ``overlap``: their overlap in pixels; ``steps``: sampler steps (1..T, evenly
            spaced); ``self_ensemble``: average the 8 dihedral transforms (8x the cost);
            ``precision``: ``'fp32'`` or ``'bf16'`` (the
            Transformer in bf16 on CPUs with bf16 units; elsewhere fp32, logged).

    Returns:
        The deblurred image, BGR uint8 ``(H, W, 3)``.
    """
    img, _ = load_input(image)
    inputs = image_to_tensor(model, img)
    with torch.no_grad():
        out = model.forward_tensor(inputs, generator=make_generator(model, seed), tile=tile,
                                   tile_overlap=overlap, steps=steps, self_ensemble=self_ensemble,
                                   precision=precision)
    return tensor_to_image(model, out)
