# Copyright (c) hidiff_mm contributors. All rights reserved.
"""The exportable prediction graph equals the editor's prediction (PyTorch only, no onnx)."""
import copy

import pytest
import torch
from torch import nn

from hidiff_mm.deployment.graph import PredictionGraph, adaptive_avg_pool, pad_to_multiple_graph
from hidiff_mm.models.editors.prediction import pad_to_multiple
from hidiff_mm.models.layers.fast_path import FAST_FORMS, convert_to_exact


@pytest.mark.parametrize('h,w', [(1, 1), (3, 10), (7, 8), (8, 8), (9, 15), (17, 2), (33, 40)])
def test_index_padding_equals_pad_to_multiple(h, w):
    # Both only copy pixels, so they must agree bit for bit, including the sides shorter than
    # their padding (reflection then edge repetition).
    x = torch.rand(2, 3, h, w)
    assert torch.equal(pad_to_multiple_graph(x, 8), pad_to_multiple(x, 8))


@pytest.mark.parametrize('h,w', [(4, 4), (6, 10), (13, 7), (20, 28), (2, 3)])
def test_pooling_equals_adaptive_avg_pool(h, w):
    # Same windows, other summation order: float32 rounding of a mean of at most 5x7 values,
    # a few ulps of values in [0, 1): 1e-6.
    x = torch.rand(2, 5, h, w)
    expected = nn.AdaptiveAvgPool2d((4, 4))(x)
    assert torch.allclose(adaptive_avg_pool(x, 4), expected, rtol=0, atol=1e-6)
    exact64 = nn.AdaptiveAvgPool2d((4, 4))(x.double())
    assert torch.allclose(adaptive_avg_pool(x.double(), 4), exact64, rtol=0, atol=1e-14)


def test_graph_is_the_exact_prediction_and_leaves_the_model(tiny_model):
    model = tiny_model
    classes = {name: type(m) for name, m in model.named_modules()}
    graph = PredictionGraph(model)
    assert {name: type(m) for name, m in model.named_modules()} == classes
    fast = {f for _, f in FAST_FORMS}
    assert not any(type(m) in fast for m in graph.modules())
    exact = convert_to_exact(copy.deepcopy(model))
    image = torch.rand(1, 3, 19, 26)
    z_T = torch.randn(1, *graph.prior_shape, generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        expected = exact.forward_tensor(image, generator=torch.Generator().manual_seed(5))
        got = graph(image, z_T)
    # Same modules, same order of operations but for the pooling (see the test above): the
    # float32 difference stays at rounding level.
    assert got.shape == image.shape
    assert torch.allclose(got, expected, rtol=0, atol=1e-5)


def test_graph_checks_steps(tiny_model):
    with pytest.raises(ValueError, match='num_inference_steps'):
        PredictionGraph(tiny_model, steps=99)
    assert PredictionGraph(tiny_model, steps=2).timesteps == [7, 0]


def test_graph_refuses_a_stochastic_sampler(tiny_model):
    model = copy.deepcopy(tiny_model)
    model.prior_head.scheduler.set_sampler(dict(type='ddim', eta=0.5))
    with pytest.raises(ValueError, match='deterministic sampler'):
        PredictionGraph(model)
    model.prior_head.scheduler.set_sampler(dict(type='ddim', eta=0.0))
    PredictionGraph(model)
