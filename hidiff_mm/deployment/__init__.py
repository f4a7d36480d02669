# Copyright (c) hidiff_mm contributors. All rights reserved.
"""Deployment: the blind prediction as one ONNX graph, or as a prior graph and a Transformer
graph for tiling (export with PyTorch, run with onnxruntime alone) and the web demo's server.
``onnx`` / ``onnxruntime`` are the optional extra ``onnx`` and are imported only by the functions
that need them. See docs/deployment.md.
"""
from .graph import (PredictionGraph, PriorGraph, TransformerGraph, adaptive_avg_pool,
                    pad_to_multiple_graph)

__all__ = ['PredictionGraph', 'PriorGraph', 'TransformerGraph', 'adaptive_avg_pool',
           'pad_to_multiple_graph']
