# Copyright (c) hidiff_mm contributors. All rights reserved.
"""What importing hidiff_mm changes in a fresh process, and that the data tools need no toolbox.

``import hidiff_mm`` may register modules, install the ``mmcv.ops`` stand-in (when mmcv has
no compiled ops) and add exactly the globals of MMEngine checkpoints to torch's weights-only
allow-list (so that a plain ``torch.load``, as MMagic's tools call it, reads them); nothing else,
and the stand-in serves exactly the names MMagic's import chain asks for.
"""
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from mmengine.logging.history_buffer import HistoryBuffer

from hidiff_mm import compat

REPO = Path(__file__).resolve().parents[1]
TAG = 'IMPORT_REPORT '

REPORT = '''
import json, pickle, sys
import torch
before = set(torch.serialization.get_safe_globals())
finders = list(sys.meta_path)
import hidiff_mm
from mmagic.utils import register_all_modules
register_all_modules()  # imports all of MMagic
import mmcv.utils
mmcv.utils.collect_env()


def name(entry):
    obj, name = entry if isinstance(entry, tuple) else (entry, None)
    return name or f'{obj.__module__}.{obj.__qualname__}'


try:
    torch.load(sys.argv[1])
    refused = None
except pickle.UnpicklingError as err:
    refused = str(err)
stand_ins = {key: sorted(k for k in vars(module) if not k.startswith('_'))
             for key, module in sys.modules.items()
             if isinstance(module, hidiff_mm.compat._StubModule)}
print(%r + json.dumps(dict(
    added=sorted(map(name, set(torch.serialization.get_safe_globals()) - before)),
    refused=refused, finders=[type(f).__name__ for f in sys.meta_path if f not in finders],
    stand_ins=stand_ins)))
''' % TAG


def _run(code, *args):
    env = dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS='1')
    proc = subprocess.run([sys.executable, '-c', code, *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout


@pytest.fixture(scope='module')
def report(tmp_path_factory):
    """What ``import hidiff_mm`` (and all of MMagic) left behind in a fresh process."""
    history = HistoryBuffer()
    history.update(1.0)
    ckpt = tmp_path_factory.mktemp('import') / 'iter_1.pth'
    torch.save(dict(state_dict={}, message_hub=dict(log_scalars={'loss': history}),
                    runtime_info=dict(eta=np.float64(1))), ckpt)
    line = [ln for ln in _run(REPORT, str(ckpt)).splitlines() if ln.startswith(TAG)][-1]
    return json.loads(line[len(TAG):])


def _name(entry):
    obj, name = entry if isinstance(entry, tuple) else (entry, None)
    return name or f'{obj.__module__}.{obj.__qualname__}'


def test_import_allows_exactly_the_mmengine_checkpoint_globals(report):
    from hidiff_mm.utils.checkpoint_globals import mmengine_safe_globals

    # torch registers its own classes when its submodules (DTensor, dynamo) are first imported
    added = [name for name in report['added'] if not name.startswith('torch.')]
    assert sorted(added) == sorted(map(_name, mmengine_safe_globals()))
    assert report['refused'] is None  # a plain torch.load reads the MMEngine checkpoint


def test_import_installs_only_the_stand_ins(report):
    expected = [] if compat._mmcv_ext_present() else ['_MMCVOpsStubFinder']
    if compat.controlnet_aux_stand_in_needed():
        expected.append('_ControlnetAuxFinder')
    assert report['finders'] == expected


@pytest.mark.skipif(compat._mmcv_ext_present(), reason='full mmcv with compiled ops is installed')
def test_stand_in_serves_exactly_what_mmagic_asks_for(report):
    """Every name of STAND_INS was asked for while MMagic imported (a name nobody asks for would
    not be in the module), and nothing else was served."""
    expected = {module: sorted(names) for module, names in compat.STAND_INS.items()}
    expected['mmcv.ops'] = sorted(expected['mmcv.ops'] + ['fused_bias_leakyrelu', 'upfirdn2d'])
    assert report['stand_ins'] == expected  # (the two submodules bound on their parent)


@pytest.mark.parametrize('tool', ['make_synthetic_blur.py', 'dataset_converters/gopro_patches.py'])
def test_data_tools_import_without_the_toolbox(tool):
    code = ('import runpy, sys\n'
            f'runpy.run_path({str(REPO / "tools" / tool)!r}, run_name="loaded")\n'
            'print(sorted(m for m in ("torch", "mmagic", "mmengine", "mmcv", "hidiff_mm")'
            ' if m in sys.modules))\n')
    assert _run(code).splitlines()[-1] == '[]'
