# The demo model's stage 2 continued so that it does no harm: sharp images out as they came in,
# barely blurred ones not over-sharpened (run 5 of demo_model/README.md). It loads the run-4
# demo model (as shipped in commit c30a58c:
#   git show c30a58c:demo_model/hidiff_demo_shake.pth > work_dirs/run4/hidiff_demo_shake.pth)
# and trains stage 2
# on both CPU cores, a fresh AdamW with a cosine from 3e-4, on four sets in one ConcatDataset:
# the shapes and dead-leaves sets it was trained on (kernels 9-31 px) and two sets with
# kernels of 3-31 px (3-7 px are no or barely any blur) and a quarter identity pairs (input =
# sharp image): dead leaves of another seed, and crops of the photographs scikit-image ships
# that the held-out photo set does not use (hidiff_mm/datasets/photo_crops.py):
#   python tools/make_synthetic_blur.py --out data/gentle_leaves --num-train 3000 --num-val 0 \
#       --kernel-sizes 3 31 --seed 1 --scene dead_leaves --identity-prob 0.25
#   python tools/make_synthetic_blur.py --out data/photo_crops --num-train 3000 --num-val 0 \
#       --kernel-sizes 3 31 --seed 0 --scene photo_crops --identity-prob 0.25
# Validation stays on the procedural shake test set. The exact commands are in
# demo_model/README.md.
_base_ = ['./hidiff_demo_leaves_finetune.py']

experiment_name = 'hidiff_demo_gentle_finetune'
work_dir = f'./work_dirs/{experiment_name}'
load_from = './work_dirs/run4/hidiff_demo_shake.pth'

iters = 6000
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
            dict(type='PairedDeblurDataset',
                 metainfo=dict(dataset_type='synthetic', task_name='deblurring'),
                 data_root='data/gentle_leaves/train',
                 data_prefix=dict(img='input', gt='target'),
                 pipeline={{_base_.train_pipeline}}),
            dict(type='PairedDeblurDataset',
                 metainfo=dict(dataset_type='synthetic', task_name='deblurring'),
                 data_root='data/photo_crops/train',
                 data_prefix=dict(img='input', gt='target'),
                 pipeline={{_base_.train_pipeline}}),
        ]))
