"""Writes tiny HI-Diff training configs for the end-to-end tests."""
import os.path as osp
from typing import Sequence

from tiny_models import TINY_GENERATOR, TINY_PRIOR_HEAD

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))

#: The tiny networks merged into the demo config's model.
TINY_MODEL = dict(generator=TINY_GENERATOR, prior_head=TINY_PRIOR_HEAD)

TEMPLATE = '''
_base_ = {demo!r}
custom_imports = dict(imports=['hidiff_mm', 'kill_hook'], allow_failed_imports=False)
work_dir = {work_dir!r}
model = {model!r}
train_pipeline = [
    dict(type='LoadImagePair', keys=['img', 'gt'], color_type='color', channel_order='rgb',
         imdecode_backend='cv2'),
    dict(type='SetValues', dictionary=dict(scale=1)),
    {crop}
    dict(type='PackInputs'),
]
train_dataloader = dict(
    batch_size={batch}, num_workers={workers}, persistent_workers=False,
    dataset=dict(data_root={data!r} + '/train', pipeline=train_pipeline))
val_dataloader = dict(num_workers=0, dataset=dict(data_root={data!r} + '/test'))
test_dataloader = val_dataloader
param_scheduler = [dict(type='CosineAnnealingLR', T_max=4, eta_min=1e-5, begin=0, end=4,
                        by_epoch=False)]
train_cfg = dict(type='IterBasedTrainLoop', max_iters={iters}, val_interval={val_interval})
default_hooks = dict(checkpoint=dict(interval={checkpoint_interval}, max_keep_ckpts=-1),
                     logger=dict(interval=1))
custom_hooks = [{hooks}]
randomness = dict(seed=0, deterministic=True)
visualizer = dict(vis_backends=[dict(type='LocalVisBackend')])
'''

AUGMENT = ("dict(type='PairedRandomCrop', gt_patch_size=16), "
           "dict(type='RandomDihedral', keys=['img', 'gt']),")


def write_config(path: str, data: str, work_dir: str, iters: int = 8, switch: int = 4,
                 kill: int = None, workers: int = 0, batch: int = 2, augment: bool = True,
                 val_interval: int = 4, faults: Sequence[dict] = (),
                 checkpoint_interval: int = 1) -> str:
    """``faults``: more hooks (e.g. the fault injectors of kill_hook.py)."""
    hooks = [f"dict(type='StageSwitchHook', switch_iter={switch})",
             "dict(type='ExactResumeHook')"]
    if kill is not None:
        hooks.append(f"dict(type='KillAfterIterHook', kill_iter={kill})")
    hooks += [repr(hook) for hook in faults]
    with open(path, 'w') as f:
        f.write(TEMPLATE.format(
            demo=osp.join(REPO, 'configs', 'hidiff_demo.py'), work_dir=work_dir, data=data,
            iters=iters, workers=workers, batch=batch, crop=AUGMENT if augment else '',
            hooks=', '.join(hooks), val_interval=val_interval, model=TINY_MODEL,
            checkpoint_interval=checkpoint_interval))
    return path
