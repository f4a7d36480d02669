"""hidiff_mm.utils.cli: one line and exit status 2 for user errors, tracebacks for bugs and in
debug mode."""
import os
import subprocess
import sys

import pytest
from mmengine.registry import Registry

from hidiff_mm.utils import CheckpointError, ConfigError, InputError, cli

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


def raise_(error):
    raise error


@pytest.mark.parametrize('main,message', [
    (lambda: raise_(FileNotFoundError(2, 'No such file or directory', 'x.py')),
     "[Errno 2] No such file or directory: 'x.py'"),
    (lambda: raise_(InputError('tile must be a positive multiple of 8')),
     'tile must be a positive multiple of 8'),
    (lambda: raise_(ConfigError('stage must be 1 or 2, got 3')), 'stage must be 1 or 2, got 3'),
    (lambda: raise_(CheckpointError('cannot read checkpoint a.pth (0 bytes)')),
     'cannot read checkpoint a.pth (0 bytes)'),
], ids=['os', 'input', 'config', 'checkpoint'])
def test_user_errors_are_one_line_with_status_2(main, message, monkeypatch, capsys):
    code, err = run_main(main, [], monkeypatch, capsys)
    assert code == 2 and err == f'tool.py: error: {message}\n'


def read_config():
    """What a tool does with the config it was given: here, a file with a bug of the user's."""
    with cli.user_input('config x.py'):
        return {}['nope']


def test_errors_while_reading_user_input_are_the_users(monkeypatch, capsys):
    """Any error raised inside ``user_input`` (reading a config, options, a named file) is one
    line naming its source; it keeps its type for in-process callers."""
    assert run_main(read_config, [], monkeypatch, capsys) == (
        2, 'tool.py: error: config x.py: nope\n')

    def bad_option():
        with cli.user_input('--steps'):
            raise TypeError("'<' not supported between instances of 'str' and 'int'")

    assert run_main(bad_option, [], monkeypatch, capsys) == (
        2, "tool.py: error: --steps: TypeError: '<' not supported between instances of 'str' "
        "and 'int'\n")
    with pytest.raises(KeyError):
        read_config()


TEST_REGISTRY = Registry('cli test')


@TEST_REGISTRY.register_module()
class Buggy:
    """A registered class whose constructor has a bug."""

    def __init__(self, size: int = 1) -> None:
        self.size = size + None


def test_the_registry_decides_config_errors_not_the_type(monkeypatch, capsys):
    """An unknown ``type`` or an argument the class does not take is the config's (MMEngine's
    registry raises it); a TypeError inside the class's own code is a bug."""
    code, err = run_main(lambda: TEST_REGISTRY.build(dict(type='Nope')), [], monkeypatch, capsys)
    # the registry first logs through MMEngine's current logger, which an earlier test of the
    # session may have bound to a capture stream that is closed by now ('--- Logging error ---');
    # the tool's own report is the last line
    assert code == 2 and err.splitlines()[-1].startswith('tool.py: error: Nope is not in the')
    code, err = run_main(lambda: TEST_REGISTRY.build(dict(type='Buggy', foo=1)), [],
                         monkeypatch, capsys)
    assert code == 2 and "unexpected keyword argument 'foo'" in err
    monkeypatch.setattr(sys, 'argv', ['tool.py'])
    with pytest.raises(TypeError, match='NoneType'):
        cli.run(lambda: TEST_REGISTRY.build(dict(type='Buggy')))


@pytest.mark.parametrize('error', [
    ZeroDivisionError('a bug'),
    TypeError("unsupported operand type(s) for +: 'NoneType' and 'int'"),
    ValueError('not enough values to unpack (expected 2, got 1)'),
    KeyError('generator'),
], ids=['ZeroDivisionError', 'TypeError', 'ValueError', 'KeyError'])
def test_bugs_keep_their_traceback(error, monkeypatch, capsys):
    """An error raised anywhere else is a bug, whatever its type: it propagates (Python prints
    its traceback, exit status 1)."""
    monkeypatch.setattr(sys, 'argv', ['tool.py'])
    with pytest.raises(type(error)):
        cli.run(lambda: raise_(error))
    assert capsys.readouterr().err == ''


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
    err = InputError('Caught InputError in DataLoader worker process 0.\nOriginal Traceback '
                     '(most recent call last):\n  File "x.py", line 3, in load\n    raise\n'
                     "hidiff_mm.utils.errors.InputError: Cannot read image 'a/1.png'\n")
    assert cli.error_message(err) == ("InputError: Cannot read image 'a/1.png' "
                                      '(Caught InputError in DataLoader worker process 0)')


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
