# Copyright (c) hidiff_mm contributors. All rights reserved.
"""Run an exported HI-Diff graph with onnxruntime and numpy only (no PyTorch, no MMagic).

The graph (``tools/deployment/export_onnx.py``) maps ``image`` (B, 3, H, W) float32 in the
model's range and ``z_T`` (B, N, C') to the prediction (B, 3, H, W); it pads to the multiple
of 8 itself, so any H, W >= 1 works. :class:`OnnxDeblurrer` adds what the PyTorch API does
around the editor: BGR uint8 in and out, the model's mean/std (stored in the graph's metadata),
and ``z_T`` drawn from ``numpy.random.default_rng(seed)`` (reproducible per seed; not the same
numbers as ``torch.Generator``, so pass ``z_T`` to compare with PyTorch). The whole image is one
run of the graph: its memory grows with the image (docs/deployment.md, "Limits").

This module imports nothing else of hidiff_mm, so ``tools/deployment/onnx_deblur.py`` loads it
alone (``tools/light_import.py``).
"""
import importlib
import json
from types import ModuleType
from typing import Optional, Sequence, Tuple

import numpy as np

INSTALL_HINT = "pip install -e '.[onnx]'  (or: pip install onnx==1.23.2 onnxruntime==1.32.0)"
# Metadata keys the exporter writes into the graph (``ModelProto.metadata_props``).
META_MEAN, META_STD, META_PRIOR_SHAPE = 'hidiff.mean', 'hidiff.std', 'hidiff.prior_shape'
META_STEPS = 'hidiff.timesteps'


def import_extra(name: str) -> ModuleType:
    """``import name`` (``'onnx'``, ``'onnxruntime'``); where it is not installed, an
    ``ImportError`` whose one line says that the optional extra is needed and how to install it.
    A package that is installed but fails to import keeps its own error."""
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as err:
        if err.name != name:
            raise
        raise ModuleNotFoundError(f'{name} is not installed; ONNX export and inference need the '
                                  f'optional extra: {INSTALL_HINT}', name=name) from None


class OnnxDeblurrer:
    """An exported HI-Diff graph in an onnxruntime session.

    Args:
        path: the ``.onnx`` file.
        providers: onnxruntime execution providers (default: CPU).
        threads: intra-op threads (None: onnxruntime's default, one per core).
    """

    def __init__(self, path: str, providers: Optional[Sequence[str]] = None,
                 threads: Optional[int] = None) -> None:
        ort = import_extra('onnxruntime')
        options = ort.SessionOptions()
        if threads is not None:
            options.intra_op_num_threads = threads
        try:
            self.session = ort.InferenceSession(
                str(path), options, providers=list(providers or ['CPUExecutionProvider']))
        except Exception as err:  # onnxruntime raises its own classes for a bad file
            if type(err).__module__.startswith('onnxruntime'):
                raise ValueError(f'cannot load the ONNX graph {path}: {err}') from None
            raise
        meta = self.session.get_modelmeta().custom_metadata_map
        missing = [k for k in (META_MEAN, META_STD, META_PRIOR_SHAPE) if k not in meta]
        if missing:
            raise ValueError(f'{path} is not a HI-Diff graph from tools/deployment/export_onnx.py '
                             f'(its metadata lacks {missing})')
        self.mean = np.asarray(json.loads(meta[META_MEAN]), np.float32).reshape(1, -1, 1, 1)
        self.std = np.asarray(json.loads(meta[META_STD]), np.float32).reshape(1, -1, 1, 1)
        self.prior_shape: Tuple[int, int] = tuple(json.loads(meta[META_PRIOR_SHAPE]))
        self.timesteps = json.loads(meta.get(META_STEPS, 'null'))

    def draw_z_T(self, seed: Optional[int] = None, batch: int = 1) -> np.ndarray:
        """``z_T ~ N(0, I)``, (batch, N, C') float32, from ``numpy.random.default_rng(seed)``."""
        rng = np.random.default_rng(seed)
        return rng.standard_normal((batch, *self.prior_shape), dtype=np.float32)

    def predict(self, image: np.ndarray, z_T: np.ndarray) -> np.ndarray:
        """image: (B, 3, H, W) float32 in the model's range; z_T: (B, N, C') -> (B, 3, H, W)."""
        if image.ndim != 4 or image.shape[1] != 3:
            raise ValueError(f'image must be (B, 3, H, W), got shape {image.shape}')
        if z_T.shape != (image.shape[0], *self.prior_shape):
            raise ValueError(f'z_T must have shape {(image.shape[0], *self.prior_shape)}, '
                             f'got {z_T.shape}')
        feeds = dict(image=np.ascontiguousarray(image, np.float32),
                     z_T=np.ascontiguousarray(z_T, np.float32))
        return self.session.run(None, feeds)[0]

    def deblur(self, image: np.ndarray, seed: Optional[int] = None,
               z_T: Optional[np.ndarray] = None) -> np.ndarray:
        """BGR uint8 (H, W, 3) -> deblurred BGR uint8 (H, W, 3); ``z_T`` (1, N, C') or one drawn
        with ``seed``. Converts as ``hidiff_mm.apis`` does (RGB, mean/std; clamp and round)."""
        if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
            raise ValueError(f'expected a BGR uint8 (H, W, 3) image, got {image.dtype} '
                             f'{image.shape}')
        rgb = image[..., ::-1].transpose(2, 0, 1)[None].astype(np.float32)
        out = self.predict((rgb - self.mean) / self.std,
                           self.draw_z_T(seed) if z_T is None else z_T)
        out = np.clip(out * self.std + self.mean, 0, 255)
        return np.ascontiguousarray(np.round(out[0]).astype(np.uint8).transpose(1, 2, 0)[..., ::-1])
