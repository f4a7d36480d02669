"""Compile the generator's forward with ``torch.compile`` as a config option."""
import types
from typing import Optional, Union

import torch
from mmagic.registry import HOOKS
from mmengine.hooks import Hook

from ...utils.errors import ConfigError


@HOOKS.register_module()
class CompileGeneratorHook(Hook):
    """Before a run (train, val or test), compile ``model.generator``'s forward.

    The generator's class ``forward`` is compiled with ``torch.compile(**kwargs)`` and bound to
    the generator *instance* as its ``forward`` attribute, so the module tree, the parameter
    names and hence the state dict keys stay as they are: checkpoints saved with or without the
    hook load either way. Under DDP (or any wrapper with ``.module``) the wrapped model's
    generator is compiled; the wrapper keeps calling it as before. Compilation itself is lazy:
    the first forward of each new kind of call (training with autograd, validation without;
    another dtype or device; with ``dynamic=False`` every new image size) pays for it.

    Note:
        - Priority ``VERY_HIGH``: the generator is compiled before ``EMAHook.before_run``
          deep-copies the model. The class's ``forward`` is compiled and bound to the instance
          with ``types.MethodType``; a deep copy re-binds it to the copy, so the copy runs its
          own parameters, not the original's.
        - ``before_run`` runs again for each ``runner.val()`` / ``runner.test()`` call on the
          same runner; a generator whose ``forward`` is already replaced on the instance is
          left alone (logged), so nothing is compiled twice.
        - Where ``torch.compile`` is missing (torch < 2.0) or refuses this platform, the hook
          logs a warning and the run goes on uncompiled.
        - On CPU, inductor compiles C++ kernels: expect minutes before the first iteration.
          ``benchmarks/bench_levers.py`` measures whether it pays on a machine. On this
          project's 2-core CPU with torch 2.14 it did not: the GoPro Transformer's compiled
          fast path took 5.58 s against 3.20 s eager at 256x256, after a 122 s first call
          (``docs/performance.md``). On an H200 it did pay.

    Args:
        mode: ``torch.compile`` mode: None (``'default'``), ``'reduce-overhead'`` or
            ``'max-autotune'``. Defaults to None.
        dynamic: True compiles one graph with symbolic image height/width at once, which suits
            deblurring (progressive patch sizes in training, full images of any size in
            validation); None lets PyTorch specialise on the first shape and turn dynamic on
            the first recompile; False recompiles for every new size. Defaults to True.
        backend: ``torch.compile`` backend (``'inductor'``, ``'aot_eager'``, ``'eager'``,
            ...). Defaults to ``'inductor'``.
        fullgraph: error on graph breaks instead of splitting the graph. Defaults to False.
        attribute: name of the sub-module of the model to compile. Defaults to
            ``'generator'`` (HIDiff, HIDiffGAN and MMagic's BaseEditModel).
    """

    priority = 'VERY_HIGH'
    MODES = (None, 'default', 'reduce-overhead', 'max-autotune', 'max-autotune-no-cudagraphs')

    def __init__(self,
                 mode: Optional[str] = None,
                 dynamic: Optional[bool] = True,
                 backend: Union[str, object] = 'inductor',
                 fullgraph: bool = False,
                 attribute: str = 'generator') -> None:
        if mode not in self.MODES:
            raise ConfigError(f'mode must be one of {self.MODES}, got {mode!r}')
        if dynamic not in (True, False, None):
            raise ConfigError(f'dynamic must be True, False or None, got {dynamic!r}')
        self.compile_kwargs = dict(mode=mode, dynamic=dynamic, backend=backend,
                                   fullgraph=fullgraph)
        self.attribute = attribute

    def _target(self, runner) -> torch.nn.Module:
        model = runner.model
        if not hasattr(model, self.attribute) and hasattr(model, 'module'):
            model = model.module  # DDP and other model wrappers
        target = getattr(model, self.attribute, None)
        if not isinstance(target, torch.nn.Module):
            raise ConfigError(f'CompileGeneratorHook: the model ({type(model).__name__}) has '
                              f'no sub-module {self.attribute!r} to compile')
        return target

    def before_run(self, runner) -> None:
        """Replace the generator's ``forward`` by its compiled version (once)."""
        target = self._target(runner)
        name = f'{type(target).__name__} ({self.attribute})'
        if 'forward' in vars(target):
            runner.logger.info(f'CompileGeneratorHook: {name}.forward is already replaced on '
                               'the instance (compiled before?); left as it is')
            return
        compile_fn = getattr(torch, 'compile', None)
        if compile_fn is None:
            runner.logger.warning(f'CompileGeneratorHook: torch {torch.__version__} has no '
                                  f'torch.compile; {name} runs eagerly')
            return
        try:
            compiled = compile_fn(type(target).forward, **self.compile_kwargs)
        except RuntimeError as err:  # e.g. "Dynamo is not supported on Python 3.12+"
            runner.logger.warning(f'CompileGeneratorHook: torch.compile is not available '
                                  f'here ({err}); {name} runs eagerly')
            return
        target.forward = types.MethodType(compiled, target)
        runner.logger.info(f'CompileGeneratorHook: {name}.forward compiled with torch.compile('
                           + ', '.join(f'{k}={v!r}' for k, v in self.compile_kwargs.items())
                           + '); the first forward of each kind compiles it')
