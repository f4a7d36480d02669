"""HIDiffTransformer(with_cp=True): the same outputs and gradients, fewer saved activations."""
import pytest
import torch
from mmagic.registry import MODELS

from hidiff_mm.models.backbones import hidiff_transformer
from hidiff_mm.models.backbones.hidiff_transformer import HIDiffTransformer
from hidiff_mm.models.layers import convert_for_device

TINY = dict(dim=8, num_blocks=[1, 2, 1, 1], num_refinement_blocks=2, prior_channels=16)


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny maps: two threads only wait for each other (on a loaded machine, for seconds)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def outputs_and_grads(model: torch.nn.Module, x: torch.Tensor, prior: torch.Tensor,
                      autocast: bool):
    model.zero_grad()
    with torch.autocast('cpu', dtype=torch.bfloat16, enabled=autocast):
        out = model(x, prior)
    (out.float() - 0.5).abs().mean().backward()
    return out.detach(), {n: p.grad.clone() for n, p in model.named_parameters()}


@pytest.mark.parametrize('fast_path', [False, True])
@pytest.mark.parametrize('autocast', [False, True])
def test_checkpointing_gives_the_same_outputs_and_gradients(fast_path, autocast):
    torch.manual_seed(0)
    model = convert_for_device(HIDiffTransformer(**TINY, fast_path=fast_path))
    x, prior = torch.rand(2, 3, 32, 32), torch.randn(2, 16, 16)
    out, grads = outputs_and_grads(model, x, prior, autocast)
    model.with_cp = True
    out_cp, grads_cp = outputs_and_grads(model, x, prior, autocast)
    assert (out.double() - out_cp.double()).abs().max() <= 1e-6
    assert grads.keys() == grads_cp.keys()
    for name in grads:
        assert (grads[name].double() - grads_cp[name].double()).abs().max() <= 1e-6, name
    assert all(g.abs().sum() > 0 for n, g in grads_cp.items() if 'output' not in n)


def saved_bytes(model: torch.nn.Module, x: torch.Tensor, prior: torch.Tensor) -> int:
    """Bytes that autograd keeps for the backward pass after the forward (unique storages)."""
    storages = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        storages[t.untyped_storage().data_ptr()] = t.untyped_storage().nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        model(x, prior)
    return sum(storages.values())


def test_checkpointing_keeps_fewer_activations_and_only_while_training(monkeypatch):
    torch.manual_seed(0)
    model = HIDiffTransformer(**TINY, fast_path=False)
    x, prior = torch.rand(1, 3, 64, 64), torch.randn(1, 16, 16)
    full = saved_bytes(model, x, prior)
    model.with_cp = True
    checkpointed = saved_bytes(model, x, prior)
    assert checkpointed < 0.1 * full, (checkpointed, full)  # 4 % here: the level inputs

    def refuse(*args, **kwargs):
        raise AssertionError('checkpointed without autograd')

    monkeypatch.setattr(hidiff_transformer, 'checkpoint', refuse)
    with torch.no_grad():  # inference runs the levels as they are
        model(x, prior)


def test_with_cp_is_a_config_option():
    cfg = dict(type='HIDiffTransformer', **TINY, with_cp=True)
    assert MODELS.build(cfg).with_cp and not HIDiffTransformer(**TINY).with_cp
