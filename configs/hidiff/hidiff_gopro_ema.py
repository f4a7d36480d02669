# The one-run GoPro recipe (configs/hidiff_gopro.py) plus an exponential moving average (EMA) of
# the weights, through MMEngine's EMAHook. The official code reads BasicSR's `ema_decay` option
# but only prints "TODO" when it is set; this is that option implemented:
#   ema = decay * ema + (1 - decay) * weights after every iteration, decay = 0.999,
# i.e. ExponentialMovingAverage with momentum = 1 - decay = 0.001 (MMEngine's momentum is the
# weight of the new value). The EMA starts as a copy of the weights after the first iteration.
#
# * Validation and the saved checkpoints use the EMA: EMAHook swaps the EMA in before each
#   validation and writes it as the checkpoint's `state_dict`, so tools/test.py, the inference
#   API and a `load_from` of the next run get the averaged weights; the raw weights go under
#   `ema_state_dict` (keys prefixed `module.`) and `--resume` swaps them back.
# * The stage switch: set_stage(2) only changes requires_grad, so the averaged parameter set is
#   the same in both stages; the hook keeps the unwrapped model, which the switch keeps (it only
#   rebuilds the DDP wrapper and the optimizer around it). The Transformer's EMA runs on across
#   the switch; the stage-2 encoder and the denoiser are constant in stage 1 (their EMA equals
#   them), and start averaging when they start training. For an EMA of stage 2 only, set
#   ema_hook.begin_iter = 300000 (until then the EMA is a plain copy of the weights).
# * Buffers are not averaged (update_buffers=False, as BasicSR): HI-Diff's only buffers are the
#   preprocessor's constant mean/std, copied as they are.
#   bash tools/dist_train.sh configs/hidiff/hidiff_gopro_ema.py 8
_base_ = ['../hidiff_gopro.py']

experiment_name = 'hidiff_gopro_ema'
work_dir = f'./work_dirs/{experiment_name}'

ema_hook = dict(
    type='EMAHook', ema_type='ExponentialMovingAverage', momentum=0.001, update_buffers=False)

custom_hooks = [
    dict(type='StageSwitchHook', switch_iter=300000),
    {{_base_.progressive}},
    dict(type='ExactResumeHook'),
    ema_hook,
    dict(type='BasicVisualizationHook', interval=1),
]
