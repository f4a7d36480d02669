# Copyright (c) hidiff_mm contributors. All rights reserved.
"""Split ONNX export and tiling in the runner: the prior graph + Transformer graph give the
single graph's prediction untiled, and with ``tile`` the editor's tiled prediction
(``forward_tensor(tile=..., tile_overlap=...)``) for the same z_T; the runner's numpy tiling
helpers are ``tiling.py``'s; the errors; the tools' ``--split`` and ``--tile`` options.

Tolerance: as test_onnx_export.py (its docstring). Each float32 result is compared with a float64
run of the same computation (for tiles: the same tiles and blending, in float64) and must lie
within ``TOLERANCE / 100`` of it; two such results then differ by less than ``TOLERANCE``. The
blending itself is the same float32 arithmetic on both sides (same weights, same order).
"""
import copy
import os.path as osp
import shutil
import subprocess
import sys

import cv2
import numpy as np
import pytest
import torch
from test_onnx_export import REPO, TOLERANCE
from tiny_models import TINY_HIDIFF

from hidiff_mm.deployment import onnx_runner
from hidiff_mm.deployment.graph import PredictionGraph, pad_to_multiple_graph
from hidiff_mm.deployment.onnx_export import export_onnx, split_paths
from hidiff_mm.deployment.onnx_runner import OnnxDeblurrer
from hidiff_mm.models.editors import tiling
from hidiff_mm.models.layers.fast_path import convert_to_exact
from hidiff_mm.utils.errors import InputError

sys.path.insert(0, osp.join(REPO, 'tools', 'deployment'))
import export_onnx as export_tool  # noqa: E402
import onnx_deblur as deblur_tool  # noqa: E402


@pytest.fixture(scope='module')
def tiny_exports(tiny_model, tmp_path_factory):
    """The tiny model as one graph and split: (single path, prior path)."""
    folder = tmp_path_factory.mktemp('onnx_tiles')
    export_onnx(tiny_model, str(folder / 'tiny.onnx'))
    export_onnx(tiny_model, str(folder / 'tiny.onnx'), split=True)
    return str(folder / 'tiny.onnx'), split_paths(str(folder / 'tiny.onnx'))[0]


def draw(model, batch, size, seed):
    """A random image (batch, 3, *size) and the z_T that ``forward_tensor`` draws with a
    generator seeded with ``seed``."""
    image = torch.rand(batch, 3, *size, generator=torch.Generator().manual_seed(seed))
    prior_shape = PredictionGraph(model).prior_shape
    z_T = torch.randn(batch, *prior_shape, generator=torch.Generator().manual_seed(seed))
    return image, z_T


def reference64(model, image, z_T, tile=None, overlap=32):
    """The prediction (tiled with ``tiling.tiled_apply`` where ``tile``) in float64."""
    graph = PredictionGraph(convert_to_exact(copy.deepcopy(model))).double()
    with torch.no_grad():
        padded = pad_to_multiple_graph(image.double(), graph.pad_multiple)
        prior = graph.prior(padded, z_T.double())
        if tile is None:
            out = graph.generator(padded, prior)
        else:
            out = tiling.tiled_apply(lambda t: graph.generator(t, prior), padded, tile, overlap,
                                     graph.pad_multiple)
    return out[..., :image.shape[2], :image.shape[3]].numpy()


@pytest.mark.parametrize('batch,size', [(1, (37, 45)), (2, (3, 11))])
def test_split_untiled_equals_the_single_graph(tiny_model, tiny_exports, batch, size):
    single, split = (OnnxDeblurrer(path) for path in tiny_exports)
    assert single.transformer is None and split.transformer is not None
    image, z_T = draw(tiny_model, batch, size, seed=sum(size))
    one = single.predict(image.numpy(), z_T.numpy())
    two = split.predict(image.numpy(), z_T.numpy())
    exact = reference64(tiny_model, image, z_T)
    assert two.shape == one.shape == (batch, 3, *size) and two.dtype == np.float32
    assert np.abs(one - exact).max() < TOLERANCE / 100
    assert np.abs(two - exact).max() < TOLERANCE / 100
    assert np.abs(two - one).max() <= TOLERANCE


def test_tiled_onnx_equals_the_tiled_editor(tiny_model, tiny_exports):
    # 37x45 pads to 40x48: 4 x 5 tiles of 16 with overlap 8, the last ones shifted back.
    model = convert_to_exact(copy.deepcopy(tiny_model))
    runner = OnnxDeblurrer(tiny_exports[1])
    image, z_T = draw(tiny_model, 1, (37, 45), seed=11)
    with torch.no_grad():
        expected = model.forward_tensor(image, tile=16, tile_overlap=8,
                                        generator=torch.Generator().manual_seed(11)).numpy()
    got = runner.predict(image.numpy(), z_T.numpy(), tile=16, overlap=8)
    exact = reference64(tiny_model, image, z_T, tile=16, overlap=8)
    assert got.shape == (1, 3, 37, 45)
    assert np.abs(expected - exact).max() < TOLERANCE / 100
    assert np.abs(got - exact).max() < TOLERANCE / 100
    assert np.abs(got - expected).max() <= TOLERANCE
    # the tiles matter: the untiled prediction is farther away than the bound
    untiled = runner.predict(image.numpy(), z_T.numpy())
    assert np.abs(untiled - got).max() > TOLERANCE
    # one tile covering the padded image is the untiled run itself
    assert np.array_equal(runner.predict(image.numpy(), z_T.numpy(), tile=48), untiled)


def test_numpy_tiling_is_tiling_py():
    for tile, overlap in [(16, 8), (16, 0), (16, 15), (16, 16), (16, -1), (12, 4), (0, 0),
                          (-8, 0), (True, 0), (16, True), (16.0, 8), (16, 8.0), (None, 8)]:
        assert onnx_runner.tile_problem(tile, overlap) == tiling.tile_problem(tile, overlap)
    for length, tile, overlap in [(8, 16, 8), (16, 16, 8), (40, 16, 8), (48, 16, 0),
                                  (720, 256, 32), (1280, 256, 32), (24, 16, 15)]:
        assert onnx_runner.tile_starts(length, tile, overlap) == \
            tiling.tile_starts(length, tile, overlap)
        assert onnx_runner.tile_grid(length, length + 8, tile, overlap) == \
            tiling.tile_grid(length, length + 8, tile, overlap)
    for size, ramp in [(16, 8), (16, 0), (8, 32), (256, 32), (5, 3)]:
        for at_start in (False, True):
            for at_end in (False, True):
                expected = tiling.ramp_weights(size, ramp, at_start, at_end).numpy()
                got = onnx_runner.ramp_weights(size, ramp, at_start, at_end)
                assert got.dtype == np.float32 and np.array_equal(got, expected)


def test_tiling_errors(tiny_exports, tmp_path):
    single, split = (OnnxDeblurrer(path) for path in tiny_exports)
    image, z_T = np.zeros((1, 3, 20, 20), np.float32), np.zeros((1, *split.prior_shape),
                                                                np.float32)
    with pytest.raises(ValueError, match=r'one graph and cannot be tiled; export with the split '
                       r'option \(tools/deployment/export_onnx.py --split\)'):
        single.predict(image, z_T, tile=16)
    for tile, overlap in [(12, 4), (16, 16), (0, 0), (16, -1)]:
        with pytest.raises(ValueError) as err:
            split.predict(image, z_T, tile=tile, overlap=overlap)
        assert str(err.value) == tiling.tile_problem(tile, overlap)[1]
    with pytest.raises(ValueError, match='is the Transformer graph of a split export'):
        OnnxDeblurrer(split_paths(tiny_exports[0])[1])
    shutil.copy(tiny_exports[1], tmp_path / 'alone.prior.onnx')
    with pytest.raises(ValueError, match=r'its Transformer graph .*tiny.transformer.onnx is '
                       'missing'):
        OnnxDeblurrer(str(tmp_path / 'alone.prior.onnx'))


def test_tools_split_and_tile(tiny_exports, tmp_path, capsys):
    config = tmp_path / 'tiny.py'
    config.write_text(f'model = {TINY_HIDIFF!r}\n')
    out = str(tmp_path / 'tool.onnx')
    assert export_tool.main(['--config', str(config), '--out', out, '--split', '--check']) == 0
    lines = capsys.readouterr().out.splitlines()
    prior_path, transformer_path = split_paths(out)
    assert lines[0].startswith(f'wrote {prior_path} + {transformer_path} (')
    checks = [line for line in lines if line.startswith('check: ')]
    assert len(checks) == 2 and checks[1].endswith('(the same, tile 16, overlap 8)')
    assert all(float(line.split('= ')[1].split()[0]) <= TOLERANCE for line in checks)

    img = (np.random.default_rng(3).random((37, 45, 3)) * 255).astype(np.uint8)
    cv2.imwrite(str(tmp_path / 'a.png'), img)
    code = ('import runpy, sys; sys.argv = sys.argv[1:]\n'
            'try:\n    runpy.run_path(sys.argv[0], run_name="__main__")\n'
            'finally:\n    print("TORCH_LOADED", "torch" in sys.modules)\n')
    tool = osp.join(REPO, 'tools', 'deployment', 'onnx_deblur.py')
    ok = subprocess.run([sys.executable, '-c', code, tool, prior_path, str(tmp_path / 'a.png'),
                         '--out', str(tmp_path / 'out'), '--tile', '16', '--overlap', '8',
                         '--threads', '1'], capture_output=True, text=True)
    assert ok.returncode == 0, ok.stderr
    assert 'TORCH_LOADED False' in ok.stdout
    expected = OnnxDeblurrer(prior_path).deblur(img, seed=100, tile=16, overlap=8)
    assert np.array_equal(cv2.imread(str(tmp_path / 'out' / 'a.png')), expected)

    # bad arguments, in-process: the user's errors (InputError)
    args = [str(tmp_path / 'a.png'), '--out', str(tmp_path / 'out')]
    with pytest.raises(InputError, match='export with the split option'):
        deblur_tool.main([tiny_exports[0], *args, '--tile', '16'])
    with pytest.raises(InputError, match='tile must be a positive multiple of 8'):
        deblur_tool.main([prior_path, *args, '--tile', '20'])
    with pytest.raises(InputError, match=r'overlap must be an integer in \[0, tile\)'):
        deblur_tool.main([prior_path, *args, '--tile', '16', '--overlap', '16'])
