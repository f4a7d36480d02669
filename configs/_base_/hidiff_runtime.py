# MMagic's runtime defaults plus what HI-Diff changes: the plugin import; checkpoints every 4k
# iterations (the official interval), in the work dir, written atomically, keeping the best PSNR,
# each recording its training stage and diffusion settings, which are checked when one is loaded
# (DiffusionSettingsHook); logging every 100 iterations; blur | output | sharp images saved
# locally and, when tensorboard is installed, to TensorBoard.
_base_ = 'mmagic::_base_/default_runtime.py'

custom_imports = dict(imports=['hidiff_mm'], allow_failed_imports=False)

default_hooks = dict(
    checkpoint=dict(
        interval=4000, save_optimizer=True, out_dir=None,
        backend_args=dict(backend='atomic_local')),
    logger=dict(interval=100),
    diffusion_settings=dict(type='DiffusionSettingsHook'))

# Every rank seeds with seed + rank, as the official code does (crops, progressive windows and
# stage-2 noise then differ between ranks).
randomness = dict(seed=100, diff_rank_seed=True, deterministic=False)

vis_backends = [dict(type='LocalVisBackend'), dict(type='TensorboardIfInstalled')]
visualizer = dict(vis_backends=vis_backends, img_keys=['input', 'pred_img', 'gt_img'])
