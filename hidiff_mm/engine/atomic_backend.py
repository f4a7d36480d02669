"""A local file backend whose writes are atomic, for MMEngine's checkpoint hook."""
from pathlib import Path
from typing import Union

from mmengine.fileio import LocalBackend, register_backend

from ..utils.io import atomic_write_bytes


@register_backend('atomic_local')
class AtomicLocalBackend(LocalBackend):
    """``LocalBackend`` that writes to a temporary file and renames it into place.

    Use it for checkpoints: ``default_hooks.checkpoint.backend_args = dict(backend='atomic_local')``
    so a run killed while saving keeps its previous checkpoint intact.
    """

    def put(self, obj: bytes, filepath: Union[str, Path]) -> None:
        atomic_write_bytes(obj, str(filepath))

    def put_text(self, obj: str, filepath: Union[str, Path], encoding: str = 'utf-8') -> None:
        atomic_write_bytes(obj.encode(encoding), str(filepath))
