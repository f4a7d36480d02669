import os
import os.path as osp
import subprocess
import sys

import pytest

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
HERE = osp.dirname(osp.abspath(__file__))


def run_tool(args, cwd=REPO, timeout=300, env_extra=None, check=True):
    env = dict(os.environ)
    env['PYTHONPATH'] = os.pathsep.join([REPO, HERE, env.get('PYTHONPATH', '')])
    env['OMP_NUM_THREADS'] = '1'
    env.update(env_extra or {})
    proc = subprocess.run([sys.executable] + args, cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f'{args} failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n'
                             f'{proc.stderr[-5000:]}')
    return proc


@pytest.fixture(scope='session')
def tiny_data(tmp_path_factory):
    """8 training and 2 test pairs of 32x32 procedural blur, in the GoPro layout."""
    root = str(tmp_path_factory.mktemp('tiny_blur'))
    run_tool(['tools/make_synthetic_blur.py', '--out', root, '--num-train', '8', '--num-val', '2',
              '--size', '32', '--seed', '1'])
    return root
