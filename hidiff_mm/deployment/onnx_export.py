# Copyright (c) hidiff_mm contributors. All rights reserved.
"""Export a HI-Diff editor's blind prediction to ONNX: one graph, or two for a tiling runner.

One graph (the default, :class:`PredictionGraph`): inputs ``image`` (B, 3, H, W) float32 in the
model's range and ``z_T`` (B, N, C') float32; output ``output`` (B, 3, H, W).

Split (``split=True``), two files beside each other, from ``path`` = ``<stem>.onnx``:

* ``<stem>.prior.onnx`` (:class:`PriorGraph`): ``image``, ``z_T`` -> ``prior`` (B, N, C') and
  ``padded`` (B, 3, H', W'), the image padded to multiples of 8 as ``pad_to_multiple``; its
  metadata names the Transformer file (``hidiff.transformer``, relative to its folder) and
  holds what the runner needs (mean/std, prior shape, timesteps, ``hidiff.pad_multiple``);
* ``<stem>.transformer.onnx`` (:class:`TransformerGraph`): ``padded`` (B, 3, h, w), h and w
  multiples of 8 (the whole padded image or a tile of it), ``prior`` -> ``output`` (B, 3, h, w).

``OnnxDeblurrer`` opens the prior file and runs the Transformer whole or tile by tile. Batch,
height and width are dynamic in all graphs. PyTorch's TorchScript exporter (``dynamo=False``)
is used: it traces the shape arithmetic of the padding and pooling as graph operations, needs
only ``onnx``, and was about 4x faster than the ``torch.export`` exporter on this model (which
also needs ``onnxscript``).
"""
import json
import os
import os.path as osp
import warnings
from typing import Dict, Optional, Tuple

import torch
from torch import nn

from .graph import PredictionGraph, PriorGraph, TransformerGraph
from .onnx_runner import (GRAPH_PRIOR, GRAPH_TRANSFORMER, META_GRAPH, META_MEAN, META_PAD_MULTIPLE,
                          META_PRIOR_SHAPE, META_STD, META_STEPS, META_TRANSFORMER, import_extra)

OPSET = 17
# The traced example: not a multiple of 8 (so the padding is traced, not skipped), batch 1.
EXAMPLE_SIZE = (20, 28)


def split_paths(path: str) -> Tuple[str, str]:
    """``<stem>.onnx`` (or ``<stem>``) -> (``<stem>.prior.onnx``, ``<stem>.transformer.onnx``)."""
    stem = path[:-len('.onnx')] if path.endswith('.onnx') else path
    return f'{stem}.prior.onnx', f'{stem}.transformer.onnx'


def _export(module: nn.Module, inputs: Tuple[torch.Tensor, ...], path: str,
            axes: Dict[str, Dict[int, str]], meta: dict, doc: str, opset: int) -> None:
    """Trace ``module`` on ``inputs`` into ``path``; the names of ``axes`` (inputs first, then
    outputs) name the graph's inputs and outputs; ``meta`` goes into its metadata as JSON."""
    onnx = import_extra('onnx')
    names = list(axes)
    os.makedirs(osp.dirname(osp.abspath(path)), exist_ok=True)
    with torch.no_grad(), warnings.catch_warnings():
        # The tracer warns about Python values read from tensors: the timesteps and the shape
        # checks, which are constants of the graph by design.
        warnings.filterwarnings('ignore', category=torch.jit.TracerWarning)
        warnings.filterwarnings('ignore', category=DeprecationWarning)
        torch.onnx.export(
            module, inputs, path, dynamo=False, opset_version=opset,
            input_names=names[:len(inputs)], output_names=names[len(inputs):],
            dynamic_axes=axes)
    proto = onnx.load(path)
    for key, value in meta.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, json.dumps(value)
    proto.doc_string = doc
    onnx.save(proto, path)


def export_onnx(model: nn.Module, path: str, steps: Optional[int] = None,
                opset: int = OPSET, split: bool = False) -> PredictionGraph:
    """Write the blind prediction of ``model`` (a HI-Diff editor) to ``path`` as ONNX.

    Args:
        model: ``HIDiff`` / ``HIDiffGAN`` (e.g. from ``init_model``); not changed (the graph
            uses a copy in the exact, official-style form, on the CPU, in float32).
        path: the ``.onnx`` file to write (its folder is created); with ``split``, the two files
            of :func:`split_paths` are written instead (module docstring).
        steps: sampler steps unrolled into the graph (None: all T, the trained chain).
        opset: ONNX opset.
        split: two graphs, prior and Transformer, for a runner that tiles.

    Returns:
        The :class:`PredictionGraph` that was exported (for parity checks).
    """
    import_extra('onnx')
    graph = PredictionGraph(model, steps).cpu().float().eval()
    image = torch.rand(1, 3, *EXAMPLE_SIZE)
    z_T = torch.randn(1, *graph.prior_shape)
    pre = model.data_preprocessor
    meta = {META_MEAN: pre.mean.flatten().tolist(), META_STD: pre.std.flatten().tolist(),
            META_PRIOR_SHAPE: list(graph.prior_shape), META_STEPS: graph.timesteps}
    batch = {0: 'batch'}
    if not split:
        _export(graph, (image, z_T), path,
                dict(image={0: 'batch', 2: 'height', 3: 'width'}, z_T=batch,
                     output={0: 'batch', 2: 'height', 3: 'width'}), meta,
                'HI-Diff blind prediction: image (B,3,H,W) in the model range, '
                'z_T (B,N,C\') ~ N(0,I) -> output (B,3,H,W)', opset)
        return graph
    prior_path, transformer_path = split_paths(path)
    padded_axes = {0: 'batch', 2: 'padded_height', 3: 'padded_width'}
    prior_graph = PriorGraph(graph)
    with torch.no_grad():  # the Transformer graph is traced on the prior graph's outputs
        prior, padded = prior_graph(image, z_T)
    _export(prior_graph, (image, z_T), prior_path,
            dict(image={0: 'batch', 2: 'height', 3: 'width'}, z_T=batch, prior=batch,
                 padded=padded_axes),
            {**meta, META_GRAPH: GRAPH_PRIOR, META_PAD_MULTIPLE: graph.pad_multiple,
             META_TRANSFORMER: osp.basename(transformer_path)},
            'HI-Diff prior: image (B,3,H,W) in the model range, z_T (B,N,C\') ~ N(0,I) -> '
            'prior (B,N,C\'), padded (B,3,H\',W\') for the Transformer graph', opset)
    _export(TransformerGraph(graph), (padded, prior), transformer_path,
            dict(padded=padded_axes, prior=batch, output=padded_axes),
            {**meta, META_GRAPH: GRAPH_TRANSFORMER, META_PAD_MULTIPLE: graph.pad_multiple},
            'HI-Diff Transformer: padded image or tile (B,3,h,w), h and w multiples of 8, '
            'prior (B,N,C\') -> output (B,3,h,w)', opset)
    return graph
