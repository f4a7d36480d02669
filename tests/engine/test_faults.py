"""Faults injected into tiny training runs of tools/train.py: a preempting SIGTERM, Ctrl-C, a
full disk, a damaged checkpoint, an image that turns unreadable, a DataLoader worker or a rank
that dies. Each run must stop with one line naming the cause, keep a good checkpoint, and
resume to the weights of an uninterrupted run (1e-6)."""
import itertools
import os
import os.path as osp
import shutil
import signal
import socket
import time
from types import SimpleNamespace

import pytest
import torch
from engine_utils import run_tool
from tiny_config import write_config

from hidiff_mm.engine.fault_tolerance import training_fault
from hidiff_mm.utils import load_weights_file
from hidiff_mm.utils.cli import ToolError, error_message, is_user_error
from hidiff_mm.utils.errors import ConfigError, InputError

ITERS, SWITCH = 6, 3  # stage 2 from iteration 4 on
RUN = dict(iters=ITERS, switch=SWITCH, workers=2, val_interval=2)


def weights(path: str) -> dict:
    return load_weights_file(path)['state_dict']  # also outside a test's allow-list scope


def max_diff(a: dict, b: dict) -> float:
    assert a.keys() == b.keys()
    return max((a[k].float() - b[k].float()).abs().max().item() for k in a)


def checkpoints(work_dir: str) -> list:
    return sorted(f for f in os.listdir(work_dir) if f.endswith('.pth') or f.startswith('.tmp'))


def last_error_line(stderr: str) -> str:
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert not any(line.startswith('Traceback') for line in lines), stderr[-3000:]
    return lines[-1]


@pytest.fixture(scope='module')
def full_run(tiny_data, tmp_path_factory):
    """Weights after ITERS uninterrupted iterations (2 DataLoader workers)."""
    tmp = tmp_path_factory.mktemp('full')
    config = write_config(str(tmp / 'full.py'), tiny_data, str(tmp / 'full'), **RUN)
    run_tool(['tools/train.py', config])
    return weights(str(tmp / 'full' / f'iter_{ITERS}.pth'))


def resume_and_compare(tiny_data, tmp_path, work_dir: str, full: dict, **kwargs) -> str:
    """``--resume`` the work dir without faults to ITERS; compare with the full run; stdout."""
    config = write_config(str(tmp_path / 'resume.py'), tiny_data, work_dir, **RUN, **kwargs)
    proc = run_tool(['tools/train.py', config, '--resume'])
    assert max_diff(weights(osp.join(work_dir, f'iter_{ITERS}.pth')), full) <= 1e-6
    return proc.stdout + proc.stderr


def test_sigterm_saves_the_iteration_and_resumes_exactly(tiny_data, tmp_path, full_run):
    """Preemption: SIGTERM to the process group (main process and DataLoader workers, as a
    scheduler sends it) in iteration 4, the first of stage 2. No checkpoint is due then, so the
    one written is the signal hook's own."""
    work_dir = str(tmp_path / 'work')
    config = write_config(
        str(tmp_path / 'term.py'), tiny_data, work_dir, **RUN, checkpoint_interval=100,
        faults=[dict(type='SignalInIterHook', signal_name='SIGTERM', at_iter=4, group=True)])
    proc = run_tool(['tools/train.py', config], check=False, new_session=True)
    assert proc.returncode == 128 + signal.SIGTERM, proc.stderr[-3000:]
    assert last_error_line(proc.stderr) == (
        f'train.py: stopped by SIGTERM after iteration 4; checkpoint {work_dir}/iter_4.pth. '
        'Run the same command with --resume to continue.')
    assert checkpoints(work_dir) == ['iter_4.pth']
    with open(osp.join(work_dir, 'last_checkpoint')) as f:
        assert f.read() == osp.join(work_dir, 'iter_4.pth')
    ckpt = torch.load(osp.join(work_dir, 'iter_4.pth'), map_location='cpu', weights_only=True)
    assert ckpt['meta']['iter'] == 4 and ckpt['meta']['hidiff_stage'] == 2
    resume_and_compare(tiny_data, tmp_path, work_dir, full_run, checkpoint_interval=100)


def test_disk_full_then_ctrl_c_then_damaged_checkpoint(tiny_data, tmp_path, full_run):
    """One run through three faults ends on the uninterrupted weights.

    1. Saving iteration 3 fails as on a full disk. With max_keep_ckpts=1 MMEngine would have
       deleted iteration 2's checkpoint before the failed save; it stays, as does
       last_checkpoint, and no temporary file is left.
    2. ``--resume`` continues from it; Ctrl-C (SIGINT to this process only) in iteration 5,
       whose checkpoint is due anyway, stops the run after it.
    3. That checkpoint is damaged: ``--resume`` says so and continues from iteration 4.
    """
    work_dir = str(tmp_path / 'work')
    config = write_config(str(tmp_path / 'disk.py'), tiny_data, work_dir, **RUN,
                          faults=[dict(type='DiskFullAtSaveHook', at_iter=3)])
    proc = run_tool(['tools/train.py', config, '--cfg-options',
                     'default_hooks.checkpoint.max_keep_ckpts=1'], check=False)
    assert proc.returncode == 1, proc.stderr[-3000:]
    assert last_error_line(proc.stderr) == (
        f'train.py: error: training stopped in iteration 3: [Errno 28] cannot write '
        f'{work_dir}/iter_3.pth: No space left on device (nothing is lost: fix the cause and '
        f'run the same command with --resume to continue from {work_dir}/iter_2.pth)')
    assert checkpoints(work_dir) == ['iter_2.pth']
    with open(osp.join(work_dir, 'last_checkpoint')) as f:
        assert f.read() == osp.join(work_dir, 'iter_2.pth')

    config = write_config(str(tmp_path / 'int.py'), tiny_data, work_dir, **RUN,
                          faults=[dict(type='SignalInIterHook', signal_name='SIGINT', at_iter=5)])
    proc = run_tool(['tools/train.py', config, '--resume'], check=False)
    assert proc.returncode == 128 + signal.SIGINT, proc.stderr[-3000:]
    assert 'resumed epoch: 0, iter: 2' in proc.stdout
    assert 'stopped by SIGINT after iteration 5' in last_error_line(proc.stderr)
    assert checkpoints(work_dir) == [f'iter_{i}.pth' for i in (2, 3, 4, 5)]

    damaged = osp.join(work_dir, 'iter_5.pth')
    with open(damaged, 'r+b') as f:
        f.truncate(osp.getsize(damaged) // 2)
    log = resume_and_compare(tiny_data, tmp_path, work_dir, full_run)
    assert f'--resume: passed over cannot read checkpoint {damaged}' in log
    assert f'--resume: continuing from {work_dir}/iter_4.pth' in log


def test_dead_data_worker_stops_the_run_with_one_line(tiny_data, tmp_path):
    """A DataLoader worker killed after iteration 3 (as by the out-of-memory killer) while the
    main process is busy ends the run with PyTorch's report naming its pid, and the checkpoint
    to resume from."""
    work_dir = str(tmp_path / 'work')
    config = write_config(str(tmp_path / 'worker.py'), tiny_data, work_dir, **RUN,
                          faults=[dict(type='KillDataWorkerHook', at_iter=3)])
    proc = run_tool(['tools/train.py', config], check=False)
    assert proc.returncode == 1, proc.stderr[-3000:]
    line = last_error_line(proc.stderr)
    assert line.startswith('train.py: error: training stopped in iteration 3: DataLoader worker '
                           '(pid ') and 'is killed by signal: Killed' in line
    assert line.endswith(f'continue from {work_dir}/iter_3.pth)')
    assert checkpoints(work_dir) == ['iter_1.pth', 'iter_2.pth', 'iter_3.pth']


def test_image_unreadable_mid_run_is_named_and_not_skipped(tiny_data, tmp_path):
    """The training loader (2 workers, as built by the Runner) after every input image turned
    unreadable mid-run: the error reaches the main process (MMEngine re-fetches only samples
    whose pipeline returns None, which LoadImagePair never does), and the one line the tools
    print from it names the file."""
    from mmengine.config import Config
    from mmengine.runner import Runner
    data = str(tmp_path / 'data')
    shutil.copytree(tiny_data, data)
    cfg = Config.fromfile(write_config(str(tmp_path / 'load.py'), data, str(tmp_path), **RUN))
    loader = Runner.build_dataloader(cfg.train_dataloader, seed=0)
    batches = iter(loader)
    next(batches)
    folder = osp.join(data, 'train', 'input')
    for name in os.listdir(folder):
        with open(osp.join(folder, name), 'wb') as f:
            f.write(b'\x89PNG\r\n\x1a\n damaged')
    with pytest.raises(InputError) as err:  # re-raised from the worker with its class
        # the workers may have loaded the rest of this epoch already; the next one reads anew
        for _ in itertools.chain(batches, loader):
            pass
    assert is_user_error(err.value)
    line = error_message(err.value)
    assert line.startswith(f"InputError: Cannot read image '{folder}/")
    assert line.endswith('in DataLoader worker process 0)') or \
        line.endswith('in DataLoader worker process 1)')


def free_port() -> int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def test_killed_rank_stops_the_other_in_bounded_time_and_resume_works(tiny_data, tmp_path):
    """Rank 1 of a 2-process gloo run is SIGKILLed after iteration 3: rank 0 stops within
    seconds (no hang), each process is reported in one line, and a 2-process ``--resume``
    continues from the last checkpoint."""
    work_dir = str(tmp_path / 'work')
    run = dict(iters=4, switch=100, batch=2, val_interval=100)
    config = write_config(str(tmp_path / 'kill.py'), tiny_data, work_dir, **run,
                          faults=[dict(type='KillAfterIterHook', kill_iter=3, rank=1)])
    launch = ['tools/dist_launch.py', '--nproc_per_node=2']
    start = time.time()
    proc = run_tool(launch + [f'--master_port={free_port()}', 'tools/train.py', config,
                              '--launcher', 'pytorch'], check=False, timeout=120)
    assert time.time() - start < 100
    assert proc.returncode == 128 + signal.SIGKILL, proc.stderr[-3000:]
    assert last_error_line(proc.stderr) == (
        'train.py: rank 1 was killed by SIGKILL (its error, if any, is above); 1 other '
        'process(es) failed or were stopped')
    assert 'train.py [rank 0]: error: training stopped in iteration' in proc.stderr
    assert 'another process of the run has stopped' in proc.stderr
    assert checkpoints(work_dir)[-1] == 'iter_3.pth'
    resumed = write_config(str(tmp_path / 'resume.py'), tiny_data, work_dir, **run)
    run_tool(launch + [f'--master_port={free_port()}', 'tools/train.py', resumed, '--launcher',
                       'pytorch', '--resume'], timeout=120)
    final = torch.load(osp.join(work_dir, 'iter_4.pth'), map_location='cpu', weights_only=True)
    assert final['meta']['iter'] == 4 and len(final['meta']['rng_states']) == 2


def test_training_fault_messages(tmp_path):
    """What train.py prints for an exception that stopped training (in-process)."""
    fault = training_fault
    previous = signal.getsignal(signal.SIGCHLD)
    runner = SimpleNamespace(work_dir=str(tmp_path), iter=6)
    try:
        nan = fault(FloatingPointError('HIDiff: non-finite loss at iteration 6 (stage 2): '
                                       "{'loss': nan}; stopped before the update"), runner)
        assert isinstance(nan, ToolError) and nan.exit_code == 1
        assert str(nan) == ("training stopped in iteration 7: HIDiff: non-finite loss at "
                            "iteration 6 (stage 2): {'loss': nan}; stopped before the update (no "
                            'checkpoint had been written yet)')
        (tmp_path / 'last_checkpoint').write_text(str(tmp_path / 'iter_6.pth'))
        peer = fault(RuntimeError('[../gloo/transport/tcp/pair.cc:561] Connection closed by peer '
                                  '[127.0.0.1]:1234. This is typically caused by ...'), runner)
        assert str(peer) == (f'training stopped in iteration 7: another process of the run has '
                             f'stopped (Connection closed by peer) (nothing is lost: fix the cause '
                             f'and run the same command with --resume to continue from '
                             f'{tmp_path}/iter_6.pth)')
        assert fault(RuntimeError('mat1 and mat2 shapes cannot be multiplied'), runner) is None
        # bugs keep their traceback, whatever their type; user errors and the OS's do not
        for bug in (ZeroDivisionError('a bug'), TypeError("unsupported operand type(s) for +: "
                    "'NoneType' and 'int'"), ValueError('too many values to unpack'),
                    KeyError('generator')):
            assert fault(bug, runner) is None, bug
        for user in (InputError("Cannot read image 'a.png' (key 'img')"),
                     ConfigError('ProgressivePatchHook: patch 64 is larger than the loaded '
                                 '32x32 crops'), OSError(28, 'No space left on device')):
            assert 'training stopped in iteration 7: ' in str(fault(user, runner))
    finally:
        signal.signal(signal.SIGCHLD, previous)


def test_a_bug_in_forward_train_keeps_its_traceback(tiny_data, tmp_path):
    """A ``TypeError`` raised by model code during training is a bug: Python's traceback, exit
    status 1, and no "fix the cause ... --resume" line."""
    config = write_config(str(tmp_path / 'bug.py'), tiny_data, str(tmp_path / 'work'),
                          **dict(RUN, workers=0), faults=[dict(type='BugInForwardTrainHook')])
    proc = run_tool(['tools/train.py', config], check=False)
    assert proc.returncode == 1, proc.stderr[-3000:]
    assert 'Traceback (most recent call last)' in proc.stderr
    assert 'in buggy_forward_train' in proc.stderr
    assert proc.stderr.rstrip().splitlines()[-1] == (
        "TypeError: unsupported operand type(s) for +: 'NoneType' and 'int'")
    assert 'training stopped' not in proc.stderr and '--resume' not in proc.stderr
