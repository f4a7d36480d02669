"""Helpers of the end-to-end training tests: run repository tools in a subprocess."""
import os
import os.path as osp
import subprocess
import sys

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
HERE = osp.dirname(osp.abspath(__file__))


def run_tool(args, cwd=REPO, timeout=300, env_extra=None, check=True, new_session=False):
    """Run ``python args...``; ``new_session``: in its own process group (a signal sent to
    that group then does not reach pytest)."""
    env = dict(os.environ)
    env['PYTHONPATH'] = os.pathsep.join([REPO, HERE, env.get('PYTHONPATH', '')])
    env['OMP_NUM_THREADS'] = '1'
    env.update(env_extra or {})
    proc = subprocess.run([sys.executable] + args, cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=timeout, start_new_session=new_session)
    if check and proc.returncode != 0:
        raise AssertionError(f'{args} failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n'
                             f'{proc.stderr[-5000:]}')
    return proc
