# Copyright (c) hidiff_mm contributors. All rights reserved.
"""Every command-line tool turns a user error into one line on stderr naming the file or key,
with exit status 2 and no traceback (hidiff_mm.utils.cli.run), checked with bad input for each.

The tools run in-process through ``cli.run`` (what their ``__main__`` block calls, checked
below), so the imports are paid once; one case runs as a real subprocess."""
import ast
import logging
import os
import os.path as osp
import runpy
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from bad_files import damaged_copies, malicious_checkpoint

from hidiff_mm.utils import cli

REPO = Path(__file__).resolve().parents[1]
DEMO_CONFIG = str(REPO / 'configs' / 'hidiff_demo.py')
# tools whose __main__ does not go through cli.run, and why
OWN_REPORTING = {'dist_launch.py': 'reports a failed rank of torchrun in one line itself'}


def tool_scripts():
    return sorted(p for p in (REPO / 'tools').rglob('*.py') if "__name__ == '__main__'"
                  in p.read_text())


@pytest.mark.parametrize('path', tool_scripts(), ids=lambda p: p.name)
def test_every_tool_main_runs_through_cli_run(path):
    if path.name in OWN_REPORTING:
        return
    tree = ast.parse(path.read_text())
    guard = [node for node in tree.body if isinstance(node, ast.If)
             and ast.unparse(node.test) == "__name__ == '__main__'"]
    calls = [ast.unparse(node) for node in ast.walk(guard[0]) if isinstance(node, ast.Call)]
    assert any(call.endswith('run(main)') for call in calls), (path, calls)


@pytest.fixture(autouse=True)
def loggers_to_this_test():
    """MMEngine's loggers print to the stdout of the test that created them (a Runner reuses
    the logger of its experiment name): point them at this test's captured stdout."""
    from mmengine.logging import MMLogger
    for logger in MMLogger._instance_dict.values():
        for handler in logger.handlers:
            if type(handler) is logging.StreamHandler:
                handler.stream = sys.stdout  # (setStream would flush the closed one)


def run_tool(name, args, monkeypatch, capsys):
    """``tools/<name> args...`` in-process through ``cli.run``: (exit status, stderr)."""
    path = str(REPO / 'tools' / name)
    main = runpy.run_path(path, run_name='cli_test')['main']
    monkeypatch.setattr(sys, 'argv', [path] + [str(a) for a in args])
    monkeypatch.setenv(cli.DEBUG_ENV, '0')
    monkeypatch.setenv(cli.MALLOC_ENV, 'default')  # the test process keeps its allocator
    monkeypatch.delenv('WORLD_SIZE', raising=False)
    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_info:
        cli.run(main)
    return exit_info.value.code, capsys.readouterr().err


def one_error_line(code, err, prog):
    """The one error line, last on stderr (third-party warnings of imports may precede it)."""
    assert code == 2 and 'Traceback' not in err, err
    lines = [line for line in err.splitlines() if line.strip()]
    assert [line for line in lines if line.startswith(prog)] == lines[-1:], err
    assert lines[-1].startswith(f'{prog}: error: '), err
    return lines[-1]


@pytest.fixture(scope='module')
def files(tmp_path_factory):
    """A demo-model checkpoint, a checkpoint of another model, damaged and malicious files."""
    from hidiff_mm.apis import init_model
    root = tmp_path_factory.mktemp('cli')
    torch.manual_seed(0)
    good = root / 'demo.pth'
    torch.save(dict(meta={}, state_dict=init_model(DEMO_CONFIG).state_dict()), good)
    other = root / 'other.pth'
    torch.save(dict(state_dict={'generator.patch_embed.proj.weight': torch.zeros(2, 3, 3, 3)}),
               other)
    out = dict(root=root, good=good, other=other, marker=root / 'pwned',
               **damaged_copies(good, root))
    out['evil'] = malicious_checkpoint(root / 'evil.pth', out['marker'])
    return out


def test_train(files, tmp_path, monkeypatch, capsys):
    work = ['--work-dir', tmp_path / 'work']
    line = one_error_line(*run_tool('train.py', [tmp_path / 'nope.py'], monkeypatch, capsys),
                          'train.py')
    assert line.endswith(f"No such file or directory: '{tmp_path}/nope.py'")
    code, err = run_tool('train.py', [DEMO_CONFIG, '--resume', '--load-from', files['good']],
                         monkeypatch, capsys)  # argparse's own usage error, also status 2
    assert code == 2 and err.splitlines()[-1].endswith('--resume and --load-from exclude each '
                                                       'other')
    line = one_error_line(*run_tool('train.py', [DEMO_CONFIG, '--resume', files['half']] + work,
                                    monkeypatch, capsys), 'train.py')
    assert f"cannot read checkpoint {files['half']}" in line and 'truncated' in line
    line = one_error_line(*run_tool('train.py', [DEMO_CONFIG, '--load-from', files['evil']] +
                                    work, monkeypatch, capsys), 'train.py')
    assert f"checkpoint {files['evil']} was refused" in line
    assert not files['marker'].exists()
    line = one_error_line(*run_tool('train.py', [DEMO_CONFIG, '--load-from', files['other']] +
                                    work, monkeypatch, capsys), 'train.py')
    assert f"checkpoint {files['other']} does not fit the model of the config" in line
    assert 'generator.patch_embed.proj.weight: file (2, 3, 3, 3) vs model (16, 3, 3, 3)' in line
    line = one_error_line(*run_tool('train.py', [DEMO_CONFIG, '--cfg-options', 'model.foo=1'] +
                                    work, monkeypatch, capsys), 'train.py')
    assert "unexpected keyword argument 'foo'" in line
    line = one_error_line(*run_tool('train.py', [DEMO_CONFIG, '--cfg-options', 'model.foo'] +
                                    work, monkeypatch, capsys), 'train.py')
    assert line.endswith("argument --cfg-options: expected KEY=VALUE, got 'model.foo'")


def test_test(files, tmp_path, monkeypatch, capsys):
    work = ['--work-dir', tmp_path / 'work']
    line = one_error_line(*run_tool('test.py', [DEMO_CONFIG, files['empty']] + work, monkeypatch,
                                    capsys), 'test.py')
    assert f"cannot read checkpoint {files['empty']} (0 bytes)" in line
    line = one_error_line(*run_tool('test.py', [DEMO_CONFIG, files['other']] + work, monkeypatch,
                                    capsys), 'test.py')
    assert f"checkpoint {files['other']} does not fit the model of the config" in line
    line = one_error_line(*run_tool('test.py', [DEMO_CONFIG, files['good'], '--cfg-options',
                                                'model.test_cfg.tile=20'] + work,
                                    monkeypatch, capsys), 'test.py')
    assert line.startswith('test.py: error: model.test_cfg: tile must be a positive multiple of 8')


def test_test_writes_what_deblur_gives_blind(tmp_path, capsys):
    """tools/test.py on a stage-1 config whose test data carry the sharp image: the image it
    writes is deblur's for the same file and seed (model.test_cfg.seed), i.e. blind, and the
    log says neither "HIDiff: training stage" nor "ORACLE", but that the file records no
    stage."""
    from hidiff_mm.apis import deblur, init_model
    data = tmp_path / 'data'
    for folder, seed in (('input', 1), ('target', 2)):
        (data / folder).mkdir(parents=True)
        rng = np.random.default_rng(seed)
        cv2.imwrite(str(data / folder / 'a.png'), rng.integers(0, 256, (24, 40, 3), np.uint8))
    config = tmp_path / 'test_cfg.py'
    config.write_text(f"""_base_ = [{DEMO_CONFIG!r}]
model = dict(generator=dict(zero_init_output=False), test_cfg=dict(seed=5))
# MMEngine names a run's logger and visualizer '<config>_<second>' and reuses an instance of
# that name: a runner built in the same second by an earlier test would lend its save_dir.
experiment_name = 'test_writes_what_deblur_gives'
custom_hooks = [dict(type='BasicVisualizationHook', interval=1)]
test_dataloader = dict(dataset=dict(data_root={str(data)!r}))
train_dataloader = test_dataloader
val_dataloader = test_dataloader
""")
    torch.manual_seed(0)
    checkpoint = tmp_path / 'model.pth'
    torch.save(dict(meta={}, state_dict=init_model(str(config)).state_dict()), checkpoint)
    tool = runpy.run_path(str(REPO / 'tools' / 'test.py'), run_name='cli_test')['main']
    capsys.readouterr()
    tool([str(config), str(checkpoint), '--work-dir', str(tmp_path / 'work')])
    log = capsys.readouterr().out
    written = list((tmp_path / 'work').glob('*/vis_data/vis_image/a_*.png'))
    assert len(written) == 1, written
    panels = cv2.imread(str(written[0]))  # input | prediction | sharp, BGR
    model = init_model(str(config), str(checkpoint))
    expected = deblur(model, data / 'input' / 'a.png', seed=5)
    assert np.array_equal(panels[:, 40:80], expected)
    assert not np.array_equal(expected, cv2.imread(str(data / 'input' / 'a.png')))
    assert 'HIDiff: training stage' not in log and 'ORACLE' not in log
    assert 'the checkpoint records no training stage: prediction is blind' in log


def test_demo(files, tmp_path, monkeypatch, capsys):
    args = ['--config', DEMO_CONFIG, '--out', tmp_path / 'out']
    tiny = tmp_path / 'tiny.png'
    cv2.imwrite(str(tiny), np.full((3, 5, 3), 90, np.uint8))  # 5x3: padded, not refused
    code, err = run_tool('demo.py', [tiny, '--checkpoint', files['good']] + args, monkeypatch,
                         capsys)
    assert code == 0 and cv2.imread(str(tmp_path / 'out' / 'tiny.png')).shape == (3, 5, 3)
    (tmp_path / 'empty.png').write_bytes(b'')
    line = one_error_line(*run_tool('demo.py', [tmp_path / 'empty.png', '--checkpoint',
                                                files['good']] + args, monkeypatch, capsys),
                          'demo.py')
    assert f'cannot read image {tmp_path}/empty.png' in line
    line = one_error_line(*run_tool('demo.py', [tiny, '--checkpoint', files['text']] + args,
                                    monkeypatch, capsys), 'demo.py')
    assert f"cannot read checkpoint {files['text']}" in line
    line = one_error_line(*run_tool('demo.py', [tiny, '--checkpoint', files['good'], '--tile',
                                                '20'] + args, monkeypatch, capsys), 'demo.py')
    assert 'tile must be a positive multiple of 8' in line
    if not torch.cuda.is_available():
        line = one_error_line(*run_tool('demo.py', [tiny, '--checkpoint', files['good'],
                                                    '--device', 'cuda'] + args,
                                        monkeypatch, capsys), 'demo.py')
        assert "device 'cuda' was asked for, but CUDA is not available here" in line


def test_convert_official_checkpoint(files, tmp_path, monkeypatch, capsys):
    out = ['--out', tmp_path / 'x.pth']
    line = one_error_line(*run_tool('convert_official_checkpoint.py', [files['evil']] + out,
                                    monkeypatch, capsys), 'convert_official_checkpoint.py')
    assert f"official checkpoint {files['evil']} was refused" in line
    assert not files['marker'].exists()
    line = one_error_line(*run_tool('convert_official_checkpoint.py', [files['head']] + out,
                                    monkeypatch, capsys), 'convert_official_checkpoint.py')
    assert f"cannot read official checkpoint {files['head']} (20 bytes)" in line
    assert not (tmp_path / 'x.pth').exists()


def test_other_tools(tmp_path, monkeypatch, capsys):
    line = one_error_line(*run_tool('analysis/get_flops.py', [DEMO_CONFIG, '--shape', 1, 2, 3, 4],
                                    monkeypatch, capsys), 'get_flops.py')
    assert '--shape takes 1 (S), 2 (H W) or 3 (C H W) values' in line
    line = one_error_line(*run_tool('visualize_diffusion.py', [
        tmp_path / 'nope.png', '--config', DEMO_CONFIG, '--checkpoint', 'c.pth', '--out', 'g.png'
    ], monkeypatch, capsys), 'visualize_diffusion.py')
    assert f'image not found: {tmp_path}/nope.png' in line
    line = one_error_line(*run_tool('dataset_converters/gopro_patches.py', [
        '--root', tmp_path / 'GoPro'], monkeypatch, capsys), 'gopro_patches.py')
    assert f"GoPro root '{tmp_path}/GoPro' does not exist" in line
    (tmp_path / 'file').write_text('')
    line = one_error_line(*run_tool('make_synthetic_blur.py', [
        '--out', tmp_path / 'file' / 'data', '--num-train', 1, '--num-val', 1
    ], monkeypatch, capsys), 'make_synthetic_blur.py')
    assert f'{tmp_path}/file/data' in line
    args = ['--out', tmp_path / 'data', '--kernel-sizes', 4, 9]
    code, err = run_tool('make_synthetic_blur.py', args, monkeypatch, capsys)
    assert code == 2 and err.splitlines()[-1].endswith(
        '--kernel-sizes takes two odd sides MIN <= MAX, each >= 3, got 4 9')


def test_a_bug_in_model_code_keeps_its_traceback(files, tmp_path, monkeypatch, capsys):
    """A TypeError raised by the model while a tool runs is a bug: it propagates out of
    ``cli.run`` (Python prints its traceback, exit status 1), it is not a one-line error."""
    from hidiff_mm.models.editors.hidiff import HIDiff

    def buggy_forward_tensor(self, inputs, *args, **kwargs):
        return inputs + None

    monkeypatch.setattr(HIDiff, 'forward_tensor', buggy_forward_tensor)
    tiny = tmp_path / 'tiny.png'
    cv2.imwrite(str(tiny), np.full((8, 8, 3), 90, np.uint8))
    with pytest.raises(TypeError, match='unsupported operand'):
        run_tool('demo.py', [tiny, '--checkpoint', files['good'], '--config', DEMO_CONFIG,
                             '--out', tmp_path / 'out'], monkeypatch, capsys)
    assert 'error:' not in capsys.readouterr().err


def test_a_real_tool_process_prints_one_line_and_no_traceback(files, tmp_path):
    """The reported case: tools/demo.py on an empty .png, as a user runs it."""
    (tmp_path / 'empty.png').write_bytes(b'')
    env = dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS='1')
    env.pop(cli.DEBUG_ENV, None)
    proc = subprocess.run(
        [sys.executable, str(REPO / 'tools' / 'demo.py'), str(tmp_path / 'empty.png'),
         '--config', DEMO_CONFIG, '--checkpoint', str(files['good']), '--out',
         str(tmp_path / 'out')], capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 2 and 'Traceback' not in proc.stderr, proc.stderr[-3000:]
    assert proc.stderr.splitlines()[-1] == (
        f'demo.py: error: cannot read image {tmp_path}/empty.png: OpenCV cannot decode it (not '
        'an image file, truncated, or an unsupported format)')
    assert not osp.exists(tmp_path / 'out')
