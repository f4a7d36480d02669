"""File helpers: writes that never leave a truncated file behind, and weight files loaded
without executing code, with errors that name the file."""
import io
import os
import os.path as osp
import pickle
import re
import tempfile
from typing import Any

from .errors import InputError


def atomic_write_bytes(data: bytes, path: str) -> None:
    """Write ``data`` to a temporary file beside ``path``, fsync it, then rename it over ``path``.

    A crash mid-write leaves the previous file (or none), never a truncated one. A failed write
    (disk full, no permission) raises ``OSError`` naming ``path`` and removes the temporary file.
    """
    tmp = None
    try:
        folder = os.path.dirname(os.path.abspath(path))
        os.makedirs(folder, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix='.tmp_', dir=folder)
        with os.fdopen(fd, 'wb') as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as err:
        if tmp is not None and os.path.exists(tmp):
            os.remove(tmp)
        if isinstance(err, OSError):  # the system's message names the temporary file, or nothing
            message = f'cannot write {path}: {err.strerror or err}'
            raise (OSError(err.errno, message) if err.errno else OSError(message)) from err
        raise


def atomic_torch_save(obj: Any, path: str) -> None:
    """``torch.save`` with :func:`atomic_write_bytes` semantics."""
    import torch  # here, so that the image tools can use this module without torch
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    atomic_write_bytes(buffer.getvalue(), path)


class CheckpointError(InputError):
    """A file that should hold weights cannot be read as such (corrupted, or refused)."""


def load_weights_file(path: str, what: str = 'checkpoint') -> Any:
    """``torch.load(path, map_location='cpu', weights_only=True)`` with errors naming the file.

    Only tensors, plain containers and the MMEngine checkpoint types allowed by
    :func:`~hidiff_mm.utils.checkpoint_globals.mmengine_checkpoint_globals` are unpickled;
    nothing in the file is executed.

    Raises:
        FileNotFoundError: ``path`` does not exist. ``IsADirectoryError``: it is a folder.
        CheckpointError: the file is truncated, corrupted or not a PyTorch file, or it asks to
            build other objects (refused).
    """
    import torch  # here, as in atomic_torch_save

    from .checkpoint_globals import mmengine_checkpoint_globals
    path = str(path)
    if not osp.exists(path):
        raise FileNotFoundError(f'{what} not found: {path}')
    if osp.isdir(path):
        raise IsADirectoryError(f'{what} {path} is a folder; expected a file')
    try:
        with mmengine_checkpoint_globals():
            return torch.load(path, map_location='cpu', weights_only=True)
    except pickle.UnpicklingError as err:
        refused = re.search(r'GLOBAL (\S+)', str(err))
        if refused:
            raise CheckpointError(
                f'{what} {path} was refused: it asks to load {refused.group(1)}, which is not a '
                'tensor or plain data (only weights are loaded; nothing was executed)') from err
        raise CheckpointError(_unreadable(path, what, err)) from err
    except Exception as err:  # torch reports damage as EOFError, RuntimeError, KeyError, ...
        raise CheckpointError(_unreadable(path, what, err)) from err


def _unreadable(path: str, what: str, err: Exception) -> str:
    text = str(err).strip()
    if 'WeightsUnpickler error:' in text:  # the reason follows torch's advice paragraph
        text = text.split('WeightsUnpickler error:', 1)[1].strip()
    detail = text.split('. ')[0].split('\n')[0]
    reason = f'{type(err).__name__}: {detail}' if detail else type(err).__name__
    return (f'cannot read {what} {path} ({osp.getsize(path)} bytes): truncated, corrupted or '
            f'not a PyTorch file ({reason})')
