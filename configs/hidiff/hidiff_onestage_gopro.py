# One-stage HI-Diff on GoPro: the two-stage recipe's 600k iterations (300k + 300k) as one run
# without a stage switch. All four networks train from the start (HIDiffOneStage); the
# Transformer moves from the stage-1 (oracle) prior to the diffused one between iterations 100k
# and 300k (PriorRampHook); the progressive patch schedule runs once (its last phase, 384^2 x 1
# per process, continues to the end) and the learning rate follows one cycle, constant to 200k
# then cosine to 1e-6 at 600k. Written for 8 processes like the other GoPro recipes:
#   bash tools/dist_train.sh configs/hidiff/hidiff_onestage_gopro.py 8
# Not run at this scale: docs/samplers.md reports the demo-scale comparison with two stages.
_base_ = ['./hidiff_s1_gopro.py']

experiment_name = 'hidiff_onestage_gopro'
work_dir = f'./work_dirs/{experiment_name}'

model = dict(type='HIDiffOneStage', stage='joint', oracle_prior=False)  # blind validation

param_scheduler = [
    dict(type='ConstantLR', factor=1.0, begin=0, end=200000, by_epoch=False),
    dict(type='CosineAnnealingLR', T_max=400000, eta_min=1e-6, begin=200000, end=600000,
         by_epoch=False),
]
train_cfg = dict(max_iters=600000)

custom_hooks = [
    dict(type='PriorRampHook', begin=100000, end=300000),
    {{_base_.progressive}},
    dict(type='ExactResumeHook'),
    dict(type='BasicVisualizationHook', interval=1),
]
