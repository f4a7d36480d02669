"""Give the runner's model the form of its blocks that its ``fast_path`` settings ask for."""
from mmagic.registry import HOOKS
from mmengine.hooks import Hook


@HOOKS.register_module()
class FastPathHook(Hook):
    """Before a run (train, val or test), convert the model for the device it is on: every
    network with a ``fast_path`` setting (``HIDiffTransformer``, ``PriorGuidedBackbone``) runs
    its ``convert_for_device()`` (see ``hidiff_mm.models.layers.convert_for_device``), so with
    the default ``fast_path='cpu'`` the fast form on the CPU and the exact form on CUDA.

    The runner has built the model and moved it to its device by then; a later ``runner.val()``
    / ``runner.test()`` converts again to the same form. ``build_runner`` adds this hook to every
    runner it builds, so ``tools/train.py`` and ``tools/test.py`` run the form the settings ask
    for. Priority ``HIGHEST``: the form is chosen before :class:`CompileGeneratorHook`
    (``VERY_HIGH``) compiles the generator's class ``forward`` and before an EMA hook deep-copies
    the model.
    """

    priority = 'HIGHEST'

    def before_run(self, runner) -> None:
        for module in runner.model.modules():  # parents first: a nested setting wins
            convert = getattr(module, 'convert_for_device', None)
            if callable(convert):
                convert()
