"""CompileGeneratorHook: compiles the generator in place, keeps the state dict, unwraps DDP.

No test uses inductor: compiling even the tiny Transformer with it takes over a minute of CPU
time on two cores. The numerical tests use ``backend='aot_eager'`` (Dynamo's capture plus
AOTAutograd's functionalised forward and backward graphs, which inductor would consume, run
without code generation; about 10 s each), the others ``backend='eager'`` (capture only, ~3 s).
"""
import copy
import logging
from types import SimpleNamespace

import pytest
import torch
from torch import nn

import hidiff_mm  # noqa: F401  (registers the hook and the models)
from hidiff_mm.engine.hooks import CompileGeneratorHook
from hidiff_mm.models.backbones.hidiff_transformer import HIDiffTransformer
from hidiff_mm.utils.errors import ConfigError

TINY = dict(dim=8, num_blocks=(1, 1, 1, 1), num_refinement_blocks=1, heads=(1, 1, 1, 1))


class Editor(nn.Module):
    """Stands in for HIDiff: the Transformer under ``generator``."""

    def __init__(self) -> None:
        super().__init__()
        self.generator = HIDiffTransformer(**TINY)


class FakeDDP(nn.Module):
    """A DDP-like wrapper: the model under ``.module``."""

    def __init__(self, module: nn.Module) -> None:
        super().__init__()
        self.module = module


def make_runner(model: nn.Module) -> SimpleNamespace:
    return SimpleNamespace(model=model, logger=logging.getLogger('test_compile_hook'))


@pytest.fixture(autouse=True)
def fresh_dynamo():
    torch._dynamo.reset()
    yield
    torch._dynamo.reset()


def inputs(h: int = 16, w: int = 16):
    gen = torch.Generator().manual_seed(0)
    return torch.rand(1, 3, h, w, generator=gen), torch.randn(1, 16, 256, generator=gen)


def test_hook_builds_from_the_registry_with_dynamic_shapes_by_default():
    from mmagic.registry import HOOKS
    hook = HOOKS.build(dict(type='CompileGeneratorHook', backend='eager'))
    assert isinstance(hook, CompileGeneratorHook)
    assert hook.compile_kwargs == dict(mode=None, dynamic=True, backend='eager', fullgraph=False)
    assert hook.priority == 'VERY_HIGH'  # before EMAHook deep-copies the model
    with pytest.raises(ValueError, match="mode must be one of .* got 'fastest'"):
        CompileGeneratorHook(mode='fastest')
    with pytest.raises(ValueError, match="dynamic must be True, False or None, got 'auto'"):
        CompileGeneratorHook(dynamic='auto')


def test_compiled_generator_matches_eager_and_keeps_state_dict_keys(caplog):
    torch.manual_seed(0)
    model = Editor().eval()
    keys = list(model.state_dict())
    img, prior = inputs()
    with torch.no_grad():
        expected = model.generator(img, prior)
    with caplog.at_level(logging.INFO, logger='test_compile_hook'):
        CompileGeneratorHook(backend='aot_eager').before_run(make_runner(model))
    assert 'forward' in vars(model.generator)  # replaced on the instance, not wrapped
    assert 'compiled with torch.compile' in caplog.text
    assert list(model.state_dict()) == keys
    with torch.no_grad():
        got = model.generator(img, prior)
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=0)
    # A checkpoint of the compiled model loads into a plain one (and back) strictly.
    Editor().load_state_dict(model.state_dict(), strict=True)
    model.load_state_dict(Editor().state_dict(), strict=True)


def test_compiled_generator_trains_like_eager():
    torch.manual_seed(0)
    eager = Editor().train()
    compiled = copy.deepcopy(eager)
    # static shapes: a dynamic forward + backward capture would take twice as long here
    CompileGeneratorHook(backend='aot_eager', dynamic=False).before_run(make_runner(compiled))
    img, prior = inputs()
    for model in (eager, compiled):
        model.generator(img, prior).square().mean().backward()
    for (name, p), q in zip(eager.named_parameters(), compiled.parameters()):
        torch.testing.assert_close(q.grad, p.grad, atol=1e-5, rtol=1e-4, msg=name)


def test_ddp_like_wrapper_is_unwrapped():
    wrapper = FakeDDP(Editor())
    keys = list(wrapper.state_dict())
    CompileGeneratorHook(backend='eager').before_run(make_runner(wrapper))
    generator = wrapper.module.generator
    assert 'forward' in vars(generator)
    assert generator.forward.__self__ is generator  # the wrapped model's own generator
    assert 'forward' not in vars(wrapper) and 'forward' not in vars(wrapper.module)
    assert list(wrapper.state_dict()) == keys  # still module.generator.*


def test_second_run_does_not_recompile_and_copies_use_their_own_weights(caplog):
    torch.manual_seed(0)
    model = Editor().eval()
    hook = CompileGeneratorHook(backend='eager')
    runner = make_runner(model)
    hook.before_run(runner)
    compiled_forward = model.generator.forward
    with caplog.at_level(logging.INFO, logger='test_compile_hook'):
        hook.before_run(runner)  # e.g. runner.val() after runner.train()
    assert model.generator.forward == compiled_forward
    assert 'already replaced' in caplog.text
    # EMAHook deep-copies the model after this hook: the copy must run its own parameters.
    twin = copy.deepcopy(model)
    with torch.no_grad():
        twin.generator.output.weight.add_(1.0)
        img, prior = inputs()
        assert not torch.allclose(twin.generator(img, prior), model.generator(img, prior))
        torch.testing.assert_close(twin.generator(img, prior),
                                   HIDiffTransformer.forward(twin.generator, img, prior))


def test_without_torch_compile_the_hook_is_a_logged_no_op(monkeypatch, caplog):
    model = Editor()
    monkeypatch.delattr(torch, 'compile')
    with caplog.at_level(logging.WARNING, logger='test_compile_hook'):
        CompileGeneratorHook().before_run(make_runner(model))
    assert 'forward' not in vars(model.generator)
    assert 'has no torch.compile' in caplog.text

    def unsupported(*args, **kwargs):
        raise RuntimeError('Dynamo is not supported on this Python')

    monkeypatch.setattr(torch, 'compile', unsupported, raising=False)
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger='test_compile_hook'):
        CompileGeneratorHook().before_run(make_runner(model))
    assert 'forward' not in vars(model.generator)
    assert 'not available here (Dynamo is not supported' in caplog.text


def test_missing_generator_is_an_error():
    with pytest.raises(ConfigError, match="no sub-module 'net_g'"):
        CompileGeneratorHook(attribute='net_g').before_run(make_runner(Editor()))
