# Copyright (c) hidiff_mm contributors. All rights reserved.
"""Export a HI-Diff editor's blind prediction to one ONNX graph (:class:`PredictionGraph`).

The graph's inputs are ``image`` (B, 3, H, W) float32 in the model's range and ``z_T``
(B, N, C') float32; its output ``output`` (B, 3, H, W). Batch, height and width are dynamic.
PyTorch's TorchScript exporter (``dynamo=False``) is used: it traces the shape arithmetic of the
padding and pooling as graph operations, needs only ``onnx``, and was about 4x faster than the
``torch.export`` exporter on this model (which also needs ``onnxscript``).
"""
import json
import os
import os.path as osp
import warnings
from typing import Optional

import torch
from torch import nn

from .graph import PredictionGraph
from .onnx_runner import META_MEAN, META_PRIOR_SHAPE, META_STD, META_STEPS, import_extra

OPSET = 17
# The traced example: not a multiple of 8 (so the padding is traced, not skipped), batch 1.
EXAMPLE_SIZE = (20, 28)


def export_onnx(model: nn.Module, path: str, steps: Optional[int] = None,
                opset: int = OPSET) -> PredictionGraph:
    """Write the blind prediction of ``model`` (a HI-Diff editor) to ``path`` as ONNX.

    Args:
        model: ``HIDiff`` / ``HIDiffGAN`` (e.g. from ``init_model``); not changed (the graph
            uses a copy in the exact, official-style form, on the CPU, in float32).
        path: the ``.onnx`` file to write (its folder is created).
        steps: sampler steps unrolled into the graph (None: all T, the trained chain).
        opset: ONNX opset.

    Returns:
        The :class:`PredictionGraph` that was exported (for parity checks).
    """
    onnx = import_extra('onnx')
    graph = PredictionGraph(model, steps).cpu().float().eval()
    image = torch.rand(1, 3, *EXAMPLE_SIZE)
    z_T = torch.randn(1, *graph.prior_shape)
    os.makedirs(osp.dirname(osp.abspath(path)), exist_ok=True)
    with torch.no_grad(), warnings.catch_warnings():
        # The tracer warns about Python values read from tensors: the timesteps and the shape
        # checks, which are constants of the graph by design.
        warnings.filterwarnings('ignore', category=torch.jit.TracerWarning)
        warnings.filterwarnings('ignore', category=DeprecationWarning)
        torch.onnx.export(
            graph, (image, z_T), path, dynamo=False, opset_version=opset,
            input_names=['image', 'z_T'], output_names=['output'],
            dynamic_axes={'image': {0: 'batch', 2: 'height', 3: 'width'},
                          'z_T': {0: 'batch'},
                          'output': {0: 'batch', 2: 'height', 3: 'width'}})
    proto = onnx.load(path)
    pre = model.data_preprocessor
    meta = {META_MEAN: pre.mean.flatten().tolist(), META_STD: pre.std.flatten().tolist(),
            META_PRIOR_SHAPE: list(graph.prior_shape), META_STEPS: graph.timesteps}
    for key, value in meta.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, json.dumps(value)
    proto.doc_string = ('HI-Diff blind prediction: image (B,3,H,W) in the model range, '
                        'z_T (B,N,C\') ~ N(0,I) -> output (B,3,H,W)')
    onnx.save(proto, path)
    return graph
