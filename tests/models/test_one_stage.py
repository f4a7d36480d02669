"""HIDiffOneStage: both branches every step, the blend, the losses and what trains."""
import pytest
import torch
from mmagic.structures import DataSample
from test_editor import tiny_model

from hidiff_mm.utils.errors import ConfigError


def one_stage_model(**kwargs) -> torch.nn.Module:
    return tiny_model('HIDiffOneStage', **kwargs)


def test_construction_refuses_stages_and_the_former_oracle_option():
    model = one_stage_model()
    assert model.stage == 'joint' and all(p.requires_grad for p in model.parameters())
    with pytest.raises(ValueError, match="stage must be 'joint', got 2.*StageSwitchHook"):
        model.set_stage(2)
    with pytest.raises(ValueError, match="stage must be 'joint', got 1"):
        one_stage_model(stage=1)
    with pytest.raises(ValueError, match='oracle_val_prior.*renamed model.oracle_prior'):
        one_stage_model(oracle_val_prior=True)
    assert not one_stage_model().oracle_prior  # validates blind unless asked
    with pytest.raises(ValueError, match=r'diffused weight must be in \[0, 1\]'):
        model.set_diffused_weight(1.5)


def test_training_without_a_diffused_weight_is_refused():
    model = one_stage_model()
    with pytest.raises(ConfigError, match="PriorRampHook"):
        model(torch.rand(1, 3, 16, 16), DataSample(gt_img=torch.rand(1, 3, 16, 16)), mode='loss')


@pytest.mark.parametrize('weight', [0.0, 0.3, 1.0])
def test_losses_are_the_blend_of_both_branches(weight):
    """The same draws by hand: z = E1, z_hat = the chain from add_noise(z); the Transformer sees
    (1 - w) z + w z_hat; pixel L1 on its output, prior L1(z_hat, z)."""
    torch.manual_seed(0)
    model = one_stage_model().double()
    blur, sharp = torch.rand(2, 3, 16, 16, dtype=torch.float64), torch.rand(
        2, 3, 16, 16, dtype=torch.float64)
    model.set_diffused_weight(weight)
    torch.manual_seed(1)
    losses = model(blur, DataSample(gt_img=sharp), mode='loss')
    with torch.no_grad():
        z = model.prior_head.encode(blur, sharp)
        torch.manual_seed(1)
        z_hat = model.prior_head.sample(blur, z_start=z)
        out = model.generator(blur, (1 - weight) * z + weight * z_hat)
    torch.testing.assert_close(losses['loss_pix'], (out - sharp).abs().mean(), rtol=1e-12,
                               atol=1e-12)
    torch.testing.assert_close(losses['loss_prior'], (z_hat - z).abs().mean(), rtol=1e-12,
                               atol=1e-12)


def test_every_network_is_in_the_graph_at_every_weight():
    """Weight 1: the stage-1 encoder's gradient is exactly zero but present (DDP needs every
    parameter in the graph); in between every network learns."""
    blur, sharp = torch.rand(2, 3, 16, 16), torch.rand(2, 3, 16, 16)
    for weight, e1_learns in ((0.5, True), (1.0, False)):
        torch.manual_seed(0)
        model = one_stage_model()
        model.set_diffused_weight(weight)
        sum(model(blur, DataSample(gt_img=sharp), mode='loss').values()).backward()
        head = model.prior_head
        for module in (model.generator, head.encoder_s2, head.denoiser):
            assert all(p.grad is not None for p in module.parameters())
            assert sum(p.grad.abs().sum() for p in module.parameters()) > 0
        grads = [p.grad for p in head.encoder_s1.parameters()]
        assert all(g is not None for g in grads)
        assert (sum(g.abs().sum() for g in grads) > 0) == e1_learns
