# Copyright (c) hidiff_mm contributors. All rights reserved.
"""A non-editable install: the wheel carries configs, tools and the demo model (``.mim``).

The wheel is built from this checkout and installed with ``--no-deps --no-index`` into a
throwaway venv that sees the pinned environment's packages through a ``.pth`` line (no network,
and the checkout is not importable from there). Everything then runs from a temporary folder.
"""
import os
import os.path as osp
import subprocess
import sys
import sysconfig
from pathlib import Path

import cv2
import numpy as np
import pytest

from hidiff_mm.utils.mim import MIM_DIR, mim_path

REPO = Path(__file__).resolve().parents[1]
CONFIG = """_base_ = ['hidiff_mm::_base_/models/hidiff_gopro.py']
model = dict(generator=dict(dim=8))
"""
BUILD = """
import hidiff_mm, mmengine.hub
from mmengine.config import Config
cfg = Config.fromfile('mine.py')
print(hidiff_mm.__file__)
print(cfg.model.type, cfg.model.generator.dim, cfg.model.generator.num_blocks)
print(mmengine.hub.get_config('hidiff_mm::hidiff/hidiff_s2_gopro.py').model.type)
"""


def _run(args, cwd, timeout=600):
    env = {k: v for k, v in os.environ.items() if k != 'PYTHONPATH'}
    env['OMP_NUM_THREADS'] = '1'
    proc = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=timeout)
    assert proc.returncode == 0, f'{args}:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}'
    return proc.stdout


@pytest.fixture(scope='module')
def installed(tmp_path_factory):
    """(python of the throwaway venv, its site-packages) with the wheel installed."""
    root = tmp_path_factory.mktemp('wheel')
    _run([sys.executable, '-m', 'pip', 'wheel', '--no-deps', '--no-build-isolation', '-q',
          '-w', str(root / 'dist'), str(REPO)], cwd=root)
    wheel, = (root / 'dist').glob('hidiff_mm-*.whl')
    _run([sys._base_executable, '-m', 'venv', '--without-pip', str(root / 'venv')], cwd=root)
    python = root / 'venv' / 'bin' / 'python'
    site = Path(_run([str(python), '-c', 'import sysconfig; print(sysconfig.get_path("purelib"))'],
                     cwd=root).strip())
    (site / 'pinned_stack.pth').write_text(sysconfig.get_path('purelib') + '\n')
    _run([sys.executable, '-m', 'pip', '--python', str(python), 'install', '--no-deps',
          '--no-index', '-q', str(wheel)], cwd=root)
    return python, site


def test_wheel_ships_configs_tools_and_demo_model(installed):
    mim = installed[1] / 'hidiff_mm' / '.mim'
    for path in ('model-index.yml', 'configs/hidiff_gopro.py', 'configs/_base_/hidiff_runtime.py',
                 'configs/hidiff/hidiff_s2_gopro.py', 'tools/train.py', 'tools/quickstart.py',
                 'demo_model/hidiff_demo_shake.pth', 'demo_model/record.json'):
        assert (mim / path).is_file() and not (mim / path).is_symlink(), path


def test_config_inherits_from_the_installed_package(installed, tmp_path):
    python, site = installed
    (tmp_path / 'mine.py').write_text(CONFIG)
    lines = _run([str(python), '-c', BUILD], cwd=tmp_path).splitlines()[-3:]
    assert lines[0] == str(site / 'hidiff_mm' / '__init__.py')  # not the checkout
    assert lines[1] == 'HIDiff 8 [3, 5, 6, 6]'  # own value over the inherited model
    assert lines[2] == 'HIDiff'


def test_quickstart_photo_from_any_folder(installed, tmp_path):
    python, site = installed
    rng = np.random.default_rng(0)
    cv2.imwrite(str(tmp_path / 'shaky.png'), rng.integers(0, 256, (24, 32, 3), dtype=np.uint8))
    quickstart = site / 'hidiff_mm' / '.mim' / 'tools' / 'quickstart.py'
    out = _run([str(python), str(quickstart), '--photo', 'shaky.png', '--out', 'res'],
               cwd=tmp_path)
    result = tmp_path / 'res' / 'figures' / 'shaky_hidiff.png'
    assert f'-> {result}' in out
    assert cv2.imread(str(result)).shape == (24, 32, 3)


def test_checkout_links_the_same_files():
    """In the repository (and an editable install) ``.mim`` links to the repository's folders."""
    for name in ('configs', 'tools', 'demo_model', 'model-index.yml'):
        assert osp.realpath(osp.join(MIM_DIR, name)) == str(REPO / name)
    assert osp.isfile(mim_path('demo_model', 'hidiff_demo_shake.pth'))
