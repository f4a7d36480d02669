# The mixing demo: nafnet_plain_synthetic-demo.py plus a HI-Diff prior, changed exactly as
# nafnet_hidiff-prior_gopro.py changes MMagic's NAFNet config (model type HIDiff, generator =
# PriorGuidedBackbone around the base's NAFNet, a LatentPriorHead, pad_multiple, the stage-switch
# and exact-resume hooks), with the small prior of configs/hidiff_demo.py. Stage 1 runs for 300
# iterations, stage 2 for 300 more: the same 600 iterations, data and learning-rate curve as the
# plain run. Validation also reports the PSNR of the blurry input ('blurry_input/PSNR').
_base_ = './nafnet_plain_synthetic-demo.py'

experiment_name = 'nafnet_hidiff-prior_synthetic-demo'
work_dir = f'./work_dirs/{experiment_name}'

model = dict(
    type='HIDiff',
    stage=1,
    generator=dict(
        _delete_=True,
        type='PriorGuidedBackbone',
        backbone={{_base_.model.generator}},
        insert_after=[
            'encoders.0', 'encoders.1', 'encoders.2', 'encoders.3', 'middle_blks',
            'decoders.0', 'decoders.1', 'decoders.2', 'decoders.3'
        ],
        prior_channels=64,
        prior_tokens=16),
    prior_head=dict(
        type='LatentPriorHead',
        encoder_s1=dict(
            type='HIDiffLatentEncoder', in_channels=6, embed_dim=16, num_blocks=2, group=4,
            act='gelu'),
        encoder_s2=dict(
            type='HIDiffLatentEncoder', in_channels=3, embed_dim=16, num_blocks=2, group=4,
            act='gelu'),
        denoiser=dict(
            type='HIDiffMixerDenoiser', prior_channels=64, inner_channels=128,
            num_mixer_blocks=2, num_tokens=16, channel_expansion=2),
        scheduler=dict(
            type='HIDiffScheduler', num_train_timesteps=8, beta_start=0.1, beta_end=0.99,
            beta_schedule='linear', prediction_type='epsilon', clip_sample=True,
            legacy_start_point=True)),
    prior_loss=dict(type='L1Loss', loss_weight=1.0, reduction='mean'),
    pad_multiple=16)

val_evaluator = [
    dict(type='PSNR'),
    dict(type='SSIM'),
    dict(type='PSNR', pred_key='input_img', prefix='blurry_input'),
]
test_evaluator = val_evaluator

custom_hooks = [
    dict(type='StageSwitchHook', switch_iter=300),
    dict(type='ExactResumeHook'),
]
