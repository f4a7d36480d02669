# Copyright (c) hidiff_mm contributors. All rights reserved.
"""Test (and evaluate) a checkpoint with MMEngine's Runner, in the style of MMagic's tools/test.py.

``import hidiff_mm`` (compat layer + registration) runs before anything imports mmagic, checkpoints
load with ``torch.load(weights_only=True)`` (the runner of ``hidiff_mm.engine.build_runner``), and
multi-process runs without CUDA use gloo (``hidiff_mm.engine.launcher``). The checkpoint is read
and checked against the model first: a missing, damaged or unfitting file is one line naming it
(exit status 2, see ``hidiff_mm.utils.cli``). The checkpoint's record (training stage, diffusion
settings) is checked against the config by ``DiffusionSettingsHook``, registered here when the
config has none. Prediction is blind unless the config sets ``model.oracle_prior=True`` (then
the log says that the scores read the ground truth).
"""
import argparse
import os
import os.path as osp

import mmengine
from mmengine.config import Config, DictAction
from mmengine.hooks import Hook
from mmengine.logging import print_log
from mmengine.model import is_model_wrapper
from quiet import quiet_imports  # tools/quiet.py (tools/ is sys.path[0])

quiet_imports()  # before hidiff_mm: hides the toolbox's known import noise (--debug shows it)

# Importing hidiff_mm applies hidiff_mm.compat and registers the HI-Diff modules; it must come
# before anything imports mmagic (the mmengine modules above do not).
from hidiff_mm.engine import build_runner  # noqa: E402
from hidiff_mm.engine.hooks import DiffusionSettingsHook  # noqa: E402
from hidiff_mm.engine.launcher import setup_cpu_distributed, teardown_distributed  # noqa: E402
from hidiff_mm.utils.checkpoint import check_fits, state_dict_of  # noqa: E402
from hidiff_mm.utils.cli import key_value, run, user_input  # noqa: E402
from hidiff_mm.utils.io import load_weights_file  # noqa: E402


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Test (and eval) a model')
    parser.add_argument('config', help='test config file path')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument(
        '--out',
        help='the file to save metric results (json/yaml/pkl); with a config that defines '
        'results_table, also <out stem>_table.md and _table.json (ours vs. published numbers)')
    parser.add_argument(
        '--work-dir', help='the directory to save the file containing evaluation metrics')
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=DictAction,
        type=key_value,
        help='override some settings in the used config, the key-value pair in xxx=yyy format '
        'will be merged into config file. If the value to be overwritten is a list, it should be '
        'like key="[a,b]" or key=a,b. It also allows nested list/tuple values, e.g. '
        'key="[(a,b),(c,d)]". Note that the quotation marks are necessary and that no white '
        'space is allowed.')
    parser.add_argument(
        '--precision', choices=['fp32', 'bf16'], default=None,
        help="prediction precision (model.test_cfg.precision; default: the config's, fp32); "
        'bf16 on CPUs with AMX-BF16 / AVX512-BF16 units, else fp32 with a warning')
    parser.add_argument(
        '--launcher', choices=['none', 'pytorch', 'slurm'], default='none', help='job launcher')
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    args = parser.parse_args(argv)
    if 'LOCAL_RANK' not in os.environ:
        os.environ['LOCAL_RANK'] = str(args.local_rank)
    return args


def set_precision(cfg: Config, precision) -> None:
    """``model.test_cfg.precision = precision`` (``None``: the config's), keeping the other
    prediction options."""
    if precision is not None:
        cfg.model.test_cfg = dict(cfg.model.get('test_cfg') or {}, precision=precision)


class SaveMetricHook(Hook):
    """Dump the test metrics to ``out`` (on the main process).

    Metrics may be 0-d tensors or numpy scalars (MMagic's ``MAE`` returns a tensor, which
    MMagic's own ``tools/test.py --out metrics.json`` fails to serialise); they are stored as
    Python numbers.

    With ``table`` (the config's ``results_table``, see ``hidiff_mm.apis.results_table``) the
    results table with the published numbers beside ours is also written, as
    ``<out without extension>_table.md`` and ``_table.json``, and printed to the log.
    """

    def __init__(self, out, table=None, info=None):
        self.out = out
        self.table = table
        self.info = info or {}

    def after_test_epoch(self, runner, metrics=None):
        if metrics is not None and runner.rank == 0:
            metrics = {k: v.item() if hasattr(v, 'item') else v for k, v in metrics.items()}
            mmengine.dump(metrics, self.out)
            if self.table:
                self._write_table(runner, metrics)

    def _write_table(self, runner, metrics):
        from hidiff_mm.apis.results_table import build_results_table, write_results_table
        loaders = getattr(runner.test_loop, 'dataloaders', None) or [runner.test_loop.dataloader]
        num_images = [len(loader.dataset) for loader in loaders]
        table = build_results_table(metrics, self.table, num_images, self.info)
        paths = write_results_table(table, osp.splitext(self.out)[0])
        with open(paths[0], encoding='utf-8') as f:
            print_log('\n' + f.read(), logger='current')
        print_log(f'results table: {", ".join(paths)}', logger='current')


def main(argv=None):
    args = parse_args(argv)
    with user_input(f'config {args.config}'):
        cfg = Config.fromfile(args.config)
        cfg.launcher = args.launcher
        if args.cfg_options is not None:
            cfg.merge_from_dict(args.cfg_options)
    set_precision(cfg, args.precision)
    # work_dir priority: CLI > config > ./work_dirs/<config name>
    if args.work_dir is not None:
        cfg.work_dir = args.work_dir
    elif cfg.get('work_dir', None) is None:
        cfg.work_dir = osp.join('./work_dirs', osp.splitext(osp.basename(args.config))[0])
    cfg.load_from = args.checkpoint
    state = state_dict_of(load_weights_file(args.checkpoint), args.checkpoint)
    setup_cpu_distributed(cfg, args.launcher)

    runner = build_runner(cfg)
    # MMEngine loads whatever matches and only warns: refuse a checkpoint of another model.
    # The stage-1 encoder is not used for prediction (converted official test files lack it).
    # (unless the config asks for the oracle prior, which is that encoder's).
    editor = runner.model.module if is_model_wrapper(runner.model) else runner.model
    oracle = getattr(editor, 'oracle_prior', False)
    check_fits(runner.model, state, args.checkpoint,
               optional=[] if oracle else ['prior_head.encoder_s1.'])
    del state
    if not any(isinstance(hook, DiffusionSettingsHook) for hook in runner.hooks):
        runner.register_hook(DiffusionSettingsHook())
    print_log(f'Working directory: {cfg.work_dir}', logger='current')
    print_log(f'Log directory: {runner._log_dir}', logger='current')
    if args.out:
        table = cfg.get('results_table', None)
        info = dict(config=args.config, checkpoint=args.checkpoint)
        runner.register_hook(SaveMetricHook(args.out, table, info), 'LOWEST')

    runner.test()
    teardown_distributed()


if __name__ == '__main__':
    run(main)
