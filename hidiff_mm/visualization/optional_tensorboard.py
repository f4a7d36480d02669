"""A TensorBoard visualization backend that is simply absent when TensorBoard is not installed."""
import importlib.util
import warnings

from mmagic.registry import VISBACKENDS
from mmengine.visualization import BaseVisBackend, TensorboardVisBackend


class _NoOpVisBackend(BaseVisBackend):
    """Accepts every call and records nothing."""

    @property
    def experiment(self) -> None:
        return None

    def _init_env(self) -> None:
        pass


@VISBACKENDS.register_module()
def TensorboardIfInstalled(save_dir: str, **kwargs) -> BaseVisBackend:  # noqa: N802
    """MMEngine's ``TensorboardVisBackend`` if ``tensorboard`` is importable, else a no-op backend.

    Lets configs list TensorBoard logging without making ``tensorboard`` a hard dependency.
    """
    if importlib.util.find_spec('tensorboard') is not None:
        return TensorboardVisBackend(save_dir=save_dir, **kwargs)
    warnings.warn('tensorboard is not installed: TensorBoard logging is off '
                  '(pip install tensorboard to enable it)')
    return _NoOpVisBackend(save_dir=save_dir)
