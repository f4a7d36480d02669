# The demo model's stage 2 continued on a mix of its procedural shake set and dead-leaves scenes
# (natural-image statistics, hidiff_mm/datasets/dead_leaves.py), so that what it learnt carries
# over to photographs. It loads the last checkpoint of the second hidiff_demo_shake_continue run
# and trains 14000 stage-2 iterations on both CPU cores, a fresh AdamW with a cosine from 3e-4.
# The leaves set:
#   python tools/make_synthetic_blur.py --out data/leaves --num-train 3000 --num-val 60 \
#       --kernel-sizes 9 31 --seed 0 --scene dead_leaves
# Validation stays on the procedural shake test set. The exact commands are in
# demo_model/README.md.
_base_ = ['./hidiff_demo_shake_continue.py']

experiment_name = 'hidiff_demo_leaves_finetune'
work_dir = f'./work_dirs/{experiment_name}'
load_from = './work_dirs/hidiff_demo_shake_continue2/iter_12000.pth'

iters = 14000
cosine = dict(type='CosineAnnealingLR', T_max=iters, eta_min=1e-5, begin=0, end=iters,
              by_epoch=False)
optim_wrapper = dict(optimizer=dict(lr=3e-4))
param_scheduler = [cosine]
train_cfg = dict(max_iters=iters)
custom_hooks = [
    dict(type='StageSwitchHook', switch_iter=0, param_scheduler=[cosine]),
    dict(type='ExactResumeHook'),
]

train_dataloader = dict(
    dataset=dict(
        _delete_=True,
        type='ConcatDataset',
        datasets=[
            dict(type='PairedDeblurDataset',
                 metainfo=dict(dataset_type='synthetic', task_name='deblurring'),
                 data_root='data/shake/train',
                 data_prefix=dict(img='input', gt='target'),
                 pipeline={{_base_.train_pipeline}}),
            dict(type='PairedDeblurDataset',
                 metainfo=dict(dataset_type='synthetic', task_name='deblurring'),
                 data_root='data/leaves/train',
                 data_prefix=dict(img='input', gt='target'),
                 pipeline={{_base_.train_pipeline}}),
        ]))
