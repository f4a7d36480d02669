# Copyright (c) hidiff_mm contributors. All rights reserved.
"""Run an exported HI-Diff graph with onnxruntime and numpy only (no PyTorch, no MMagic).

An export (``tools/deployment/export_onnx.py``) is one of:

* one graph, ``image`` (B, 3, H, W) float32 in the model's range and ``z_T`` (B, N, C') -> the
  prediction (B, 3, H, W); it pads to the multiple of 8 itself, so any H, W >= 1 works. The
  whole image is one run of the graph: its memory grows with the image;
* a split export (``--split``): ``<stem>.prior.onnx`` (``image``, ``z_T`` -> ``prior``, and the
  image ``padded`` to multiples of 8) and ``<stem>.transformer.onnx`` (a padded image or tile
  and the prior -> its prediction), named in the prior graph's metadata. Open the prior file:
  :class:`OnnxDeblurrer` runs the Transformer on the whole padded image, or with ``tile`` tile
  by tile with the one prior of the whole image, blended as ``HIDiff.forward_tensor(tile=...)``
  (:func:`tiled_apply`, the numpy form of ``hidiff_mm/models/editors/tiling.py``), and crops.
  Tiling bounds the Transformer's memory by the tile (docs/deployment.md).

:class:`OnnxDeblurrer` adds what the PyTorch API does around the editor: BGR uint8 in and out,
the model's mean/std (stored in the graph's metadata), and ``z_T`` drawn from
``numpy.random.default_rng(seed)`` (reproducible per seed; not the same numbers as
``torch.Generator``, so pass ``z_T`` to compare with PyTorch).

This module imports nothing else of hidiff_mm, so ``tools/deployment/onnx_deblur.py`` loads it
alone (``tools/light_import.py``); that is why the tiling helpers are repeated here in numpy
(``tests/deployment`` checks them against ``tiling.py``).
"""
import importlib
import json
import os.path as osp
from types import ModuleType
from typing import Callable, List, Optional, Sequence, Tuple

import numpy as np

INSTALL_HINT = "pip install -e '.[onnx]'  (or: pip install onnx==1.23.2 onnxruntime==1.32.0)"
# Metadata keys the exporter writes into the graph (``ModelProto.metadata_props``).
META_MEAN, META_STD, META_PRIOR_SHAPE = 'hidiff.mean', 'hidiff.std', 'hidiff.prior_shape'
META_STEPS = 'hidiff.timesteps'
# Split exports: which graph a file is, the prior graph's Transformer file (relative to the
# prior file's folder), and the size multiple of the Transformer's input.
META_GRAPH, META_TRANSFORMER = 'hidiff.graph', 'hidiff.transformer'
META_PAD_MULTIPLE = 'hidiff.pad_multiple'
GRAPH_PRIOR, GRAPH_TRANSFORMER = 'prior', 'transformer'
DEFAULT_OVERLAP = 32  # as PredictionOptions.tile_overlap


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


def tile_problem(tile: int, overlap: int, multiple: int = 8) -> Optional[Tuple[str, str]]:
    """``('tile' or 'overlap', what is wrong)`` unless ``tile`` is a positive multiple of
    ``multiple`` and ``0 <= overlap < tile``; None where both are usable (``tiling.py``'s)."""
    if isinstance(tile, bool) or not isinstance(tile, int) or tile <= 0 or tile % multiple:
        return 'tile', (f'tile must be a positive multiple of {multiple} (the size multiple the '
                        f'model needs, its pad_multiple), got {tile!r}')
    if isinstance(overlap, bool) or not isinstance(overlap, int) or not 0 <= overlap < tile:
        return 'overlap', f'overlap must be an integer in [0, tile) = [0, {tile}), got {overlap!r}'
    return None


def tile_starts(length: int, tile: int, overlap: int) -> List[int]:
    """Start offsets of the tiles along an axis of ``length`` pixels (``tiling.py``'s):
    every ``tile - overlap`` below ``length - tile``, then ``length - tile``; [0] if it fits."""
    if length <= tile:
        return [0]
    return list(range(0, length - tile, tile - overlap)) + [length - tile]


def ramp_weights(size: int, ramp: int, at_start: bool, at_end: bool) -> np.ndarray:
    """(size,) float32 blending weights of one tile side (``tiling.py``'s): 1 inside, a linear
    ramp ``(i + 1) / (ramp + 1)`` over the ``ramp`` pixels next to a side inside the image."""
    w = np.ones(size, np.float32)
    ramp = min(ramp, size // 2)
    if ramp > 0:
        up = np.arange(1, ramp + 1, dtype=np.float32) / np.float32(ramp + 1)
        if not at_start:
            w[:ramp] = up
        if not at_end:
            w[-ramp:] = np.minimum(w[-ramp:], up[::-1])
    return w


def tile_grid(height: int, width: int, tile: int,
              overlap: int) -> List[Tuple[int, int, int, int]]:
    """``(y, x, tile_h, tile_w)`` of every tile of a ``height x width`` image, rows outer."""
    th, tw = min(tile, height), min(tile, width)
    return [(y, x, th, tw) for y in tile_starts(height, tile, overlap)
            for x in tile_starts(width, tile, overlap)]


def tiled_apply(fn: Callable[[np.ndarray], np.ndarray], image: np.ndarray, tile: int,
                overlap: int) -> np.ndarray:
    """``fn`` ((B, C, h, w) -> (B, C_out, h, w)) tile by tile over ``image`` (B, C, H, W), H and
    W multiples of the model's, blended with :func:`ramp_weights` -> (B, C_out, H, W) float32;
    exactly ``fn(image)`` where one tile covers it. The arithmetic of ``tiling.tiled_apply``."""
    height, width = image.shape[-2:]
    grid = tile_grid(height, width, tile, overlap)
    if len(grid) == 1:
        return fn(image)
    out = None
    weight_sum = np.zeros((1, 1, height, width), np.float32)
    for y, x, th, tw in grid:
        pred = fn(np.ascontiguousarray(image[..., y:y + th, x:x + tw]))
        if out is None:
            out = np.zeros((*pred.shape[:2], height, width), pred.dtype)
        weight = (ramp_weights(th, overlap, y == 0, y + th == height)[:, None]
                  * ramp_weights(tw, overlap, x == 0, x + tw == width)[None, :])
        out[..., y:y + th, x:x + tw] += pred * weight
        weight_sum[..., y:y + th, x:x + tw] += weight
    return out / weight_sum


class OnnxDeblurrer:
    """An exported HI-Diff graph in onnxruntime sessions: one graph, or the prior graph of a
    split export (``<stem>.prior.onnx``) with the Transformer graph its metadata names.

    Args:
        path: the ``.onnx`` file (for a split export, the ``.prior.onnx`` one).
        providers: onnxruntime execution providers (default: CPU).
        threads: intra-op threads (None: onnxruntime's default, one per core).
    """

    def __init__(self, path: str, providers: Optional[Sequence[str]] = None,
                 threads: Optional[int] = None) -> None:
        ort = import_extra('onnxruntime')
        options = ort.SessionOptions()
        if threads is not None:
            options.intra_op_num_threads = threads
        self.path = str(path)
        self.session, meta = self._load(ort, self.path, options, providers)
        self.mean = np.asarray(json.loads(meta[META_MEAN]), np.float32).reshape(1, -1, 1, 1)
        self.std = np.asarray(json.loads(meta[META_STD]), np.float32).reshape(1, -1, 1, 1)
        self.prior_shape: Tuple[int, int] = tuple(json.loads(meta[META_PRIOR_SHAPE]))
        self.timesteps = json.loads(meta.get(META_STEPS, 'null'))
        kind = json.loads(meta.get(META_GRAPH, 'null'))
        if kind == GRAPH_TRANSFORMER:
            raise ValueError(f'{path} is the Transformer graph of a split export; open its prior '
                             'graph (<stem>.prior.onnx), which names this file')
        #: The Transformer's session of a split export; None for one graph.
        self.transformer = None
        self.pad_multiple: Optional[int] = None
        if kind == GRAPH_PRIOR:
            self.pad_multiple = json.loads(meta[META_PAD_MULTIPLE])
            other = osp.join(osp.dirname(self.path), json.loads(meta[META_TRANSFORMER]))
            if not osp.isfile(other):
                raise ValueError(f'{path} is the prior graph of a split export; its Transformer '
                                 f'graph {other} is missing')
            self.transformer, other_meta = self._load(ort, other, options, providers)
            if json.loads(other_meta.get(META_GRAPH, 'null')) != GRAPH_TRANSFORMER or \
                    other_meta[META_PRIOR_SHAPE] != meta[META_PRIOR_SHAPE]:
                raise ValueError(f'{other} is not the Transformer graph of {path} (export both '
                                 'again with tools/deployment/export_onnx.py --split)')

    @staticmethod
    def _load(ort: ModuleType, path: str, options,
              providers: Optional[Sequence[str]]) -> Tuple[object, dict]:
        """An onnxruntime session of the HI-Diff graph ``path`` and its metadata; ``ValueError``
        naming the file where it is not one."""
        try:
            session = ort.InferenceSession(
                path, options, providers=list(providers or ['CPUExecutionProvider']))
        except Exception as err:  # onnxruntime raises its own classes for a bad file
            if type(err).__module__.startswith('onnxruntime'):
                raise ValueError(f'cannot load the ONNX graph {path}: {err}') from None
            raise
        meta = session.get_modelmeta().custom_metadata_map
        missing = [k for k in (META_MEAN, META_STD, META_PRIOR_SHAPE) if k not in meta]
        if missing:
            raise ValueError(f'{path} is not a HI-Diff graph from tools/deployment/export_onnx.py '
                             f'(its metadata lacks {missing})')
        return session, meta

    def tiling_problem(self, tile: Optional[int], overlap: int = DEFAULT_OVERLAP) -> Optional[str]:
        """Why ``predict(..., tile, overlap)`` cannot tile this export, or None (also for
        ``tile=None``, no tiling): a single graph, or the :func:`tile_problem` of the values."""
        if tile is None:
            return None
        if self.transformer is None:
            return (f'{self.path} is the whole prediction in one graph and cannot be tiled; '
                    'export with the split option (tools/deployment/export_onnx.py --split) '
                    'and pass its <stem>.prior.onnx')
        problem = tile_problem(tile, overlap, self.pad_multiple)
        return problem and problem[1]

    def draw_z_T(self, seed: Optional[int] = None, batch: int = 1) -> np.ndarray:
        """``z_T ~ N(0, I)``, (batch, N, C') float32, from ``numpy.random.default_rng(seed)``."""
        rng = np.random.default_rng(seed)
        return rng.standard_normal((batch, *self.prior_shape), dtype=np.float32)

    def predict(self, image: np.ndarray, z_T: np.ndarray, tile: Optional[int] = None,
                overlap: int = DEFAULT_OVERLAP) -> np.ndarray:
        """image: (B, 3, H, W) float32 in the model's range; z_T: (B, N, C') -> (B, 3, H, W).

        ``tile`` (split exports only): the Transformer on ``tile x tile`` windows of the padded
        image, neighbours overlapping by at least ``overlap`` pixels, all with the one prior
        of the whole image; None: the whole padded image at once.
        """
        if image.ndim != 4 or image.shape[1] != 3:
            raise ValueError(f'image must be (B, 3, H, W), got shape {image.shape}')
        if z_T.shape != (image.shape[0], *self.prior_shape):
            raise ValueError(f'z_T must have shape {(image.shape[0], *self.prior_shape)}, '
                             f'got {z_T.shape}')
        problem = self.tiling_problem(tile, overlap)
        if problem:
            raise ValueError(problem)
        feeds = dict(image=np.ascontiguousarray(image, np.float32),
                     z_T=np.ascontiguousarray(z_T, np.float32))
        if self.transformer is None:
            return self.session.run(None, feeds)[0]
        prior, padded = self.session.run(['prior', 'padded'], feeds)

        def transformer(x: np.ndarray) -> np.ndarray:
            return self.transformer.run(None, dict(padded=x, prior=prior))[0]

        out = transformer(padded) if tile is None else tiled_apply(transformer, padded, tile,
                                                                   overlap)
        return np.ascontiguousarray(out[..., :image.shape[2], :image.shape[3]])

    def deblur(self, image: np.ndarray, seed: Optional[int] = None,
               z_T: Optional[np.ndarray] = None, tile: Optional[int] = None,
               overlap: int = DEFAULT_OVERLAP) -> np.ndarray:
        """BGR uint8 (H, W, 3) -> deblurred BGR uint8 (H, W, 3); ``z_T`` (1, N, C') or one drawn
        with ``seed``; ``tile``/``overlap`` as :meth:`predict`. Converts as ``hidiff_mm.apis``
        does (RGB, mean/std; clamp and round)."""
        if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
            raise ValueError(f'expected a BGR uint8 (H, W, 3) image, got {image.dtype} '
                             f'{image.shape}')
        rgb = image[..., ::-1].transpose(2, 0, 1)[None].astype(np.float32)
        out = self.predict((rgb - self.mean) / self.std,
                           self.draw_z_T(seed) if z_T is None else z_T, tile, overlap)
        out = np.clip(out * self.std + self.mean, 0, 255)
        return np.ascontiguousarray(np.round(out[0]).astype(np.uint8).transpose(1, 2, 0)[..., ::-1])
