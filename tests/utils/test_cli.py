"""hidiff_mm.utils.cli: one line and exit status 2 for user errors, tracebacks for bugs and in
debug mode."""
import os
import subprocess
import sys

import pytest

from hidiff_mm.utils import cli

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def run_main(main, argv, monkeypatch, capsys):
    """``cli.run(main)`` as ``tool.py argv...``: (exit status, stderr)."""
    monkeypatch.setattr(sys, 'argv', ['tool.py'] + argv)
    with pytest.raises(SystemExit) as exit_info:
        cli.run(main)
    return exit_info.value.code, capsys.readouterr().err


@pytest.fixture(autouse=True)
def no_debug(monkeypatch):
    """Debug mode off; ``cli.run`` may export it, monkeypatch then restores the environment. The
    test process keeps glibc's default allocator (``cli.run`` would set it for a tool)."""
    monkeypatch.setenv(cli.DEBUG_ENV, '0')
    monkeypatch.setenv(cli.MALLOC_ENV, 'default')
    monkeypatch.delenv('WORLD_SIZE', raising=False)


@pytest.mark.parametrize('error,message', [
    (FileNotFoundError(2, 'No such file or directory', 'x.py'),
     "[Errno 2] No such file or directory: 'x.py'"),
    (KeyError('Nope is not in the mmagic::model registry'),
     'Nope is not in the mmagic::model registry'),
    (ValueError('tile must be a positive multiple of 8'), 'tile must be a positive multiple of 8'),
    (TypeError("HIDiff.__init__() got an unexpected keyword argument 'foo'"),
     "HIDiff.__init__() got an unexpected keyword argument 'foo'"),
])
def test_user_errors_are_one_line_with_status_2(error, message, monkeypatch, capsys):

    def main():
        raise error

    code, err = run_main(main, [], monkeypatch, capsys)
    assert code == 2 and err == f'tool.py: error: {message}\n'


def test_bugs_keep_their_traceback(monkeypatch, capsys):

    def main():
        raise ZeroDivisionError('a bug')

    monkeypatch.setattr(sys, 'argv', ['tool.py'])
    with pytest.raises(ZeroDivisionError):
        cli.run(main)


def test_debug_flag_shows_the_traceback_and_is_removed(monkeypatch, capsys):
    seen = []

    def main():
        seen.append(list(sys.argv))
        raise FileNotFoundError('config file not found: x.py')

    code, err = run_main(main, ['a', '--debug', 'b'], monkeypatch, capsys)
    assert seen == [['tool.py', 'a', 'b']] and code == 2
    assert 'Traceback (most recent call last)' in err and 'in main' in err
    assert err.endswith('tool.py: error: config file not found: x.py\n')
    assert os.environ[cli.DEBUG_ENV] == '1'  # inherited by child processes


def test_return_values_faults_and_interrupts(monkeypatch, capsys):
    assert run_main(lambda: 3, [], monkeypatch, capsys) == (3, '')
    assert run_main(lambda: {'a': 1}, [], monkeypatch, capsys) == (0, '')

    def fault():
        raise cli.ToolError('training stopped in iteration 3: disk full', exit_code=1)

    assert run_main(fault, [], monkeypatch, capsys) == (
        1, 'tool.py: error: training stopped in iteration 3: disk full\n')

    def interrupted():
        raise KeyboardInterrupt

    assert run_main(interrupted, [], monkeypatch, capsys) == (130, 'tool.py: interrupted\n')

    def child_failed():
        raise subprocess.CalledProcessError(2, ['python', 'tools/train.py', 'c.py'])

    monkeypatch.setenv('WORLD_SIZE', '2')
    monkeypatch.setenv('RANK', '1')
    assert run_main(child_failed, [], monkeypatch, capsys) == (
        2, "tool.py [rank 1]: error: 'python tools/train.py c.py' failed with exit status 2 "
        '(its error is printed above)\n')


def test_dataloader_worker_errors_lose_the_worker_traceback():
    # torch re-raises a worker's exception with the worker's formatted traceback as message
    err = ValueError('Caught ValueError in DataLoader worker process 1.\nOriginal Traceback '
                     '(most recent call last):\n  File "x.py", line 3, in load\n    raise\n'
                     "ValueError: Cannot read image 'a/1.png' (key 'img')\n")
    assert cli.error_message(err) == ("ValueError: Cannot read image 'a/1.png' (key 'img') "
                                      '(Caught ValueError in DataLoader worker process 1)')


def test_a_finished_rank_exits_with_its_status_and_flushed_output(tmp_path):
    log = tmp_path / 'rank.log'
    script = (
        'import logging, sys\n'
        'from hidiff_mm.utils import cli\n'
        'def main():\n'
        f'    handler = logging.FileHandler({str(log)!r})\n'
        "    logging.getLogger('rank').addHandler(handler)\n"
        "    logging.getLogger('rank').error('logged line')\n"
        "    sys.stdout.write('unflushed output')\n"
        '    return 3\n'
        'cli.run(main)\n')
    env = dict(os.environ, WORLD_SIZE='2', RANK='1', PYTHONPATH=REPO_ROOT)
    env[cli.MALLOC_ENV] = 'default'
    proc = subprocess.run([sys.executable, '-c', script], env=env, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 3
    assert proc.stdout.endswith('unflushed output')
    assert log.read_text() == 'logged line\n'
