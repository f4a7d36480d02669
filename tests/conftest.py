# Copyright (c) hidiff_mm contributors. All rights reserved.
"""Session setup shared by all tests.

1. Apply :mod:`hidiff_mm.compat` before anything imports mmagic. ``compat.py`` (like
   ``utils/checkpoint_globals.py``, used below) is loaded on its own instead of through
   ``import hidiff_mm``, so a broken module elsewhere in the package fails only the tests that
   import it, not the whole session. A later ``import hidiff_mm`` reuses these module objects.
2. Two torch threads (the CI machines have two cores).
3. Register MMagic's modules and make ``mmagic`` the default scope, as MMagic's own tests do.
4. Test code reads the checkpoints that runs wrote with plain ``torch.load(weights_only=True)``:
   each test runs inside ``mmengine_checkpoint_globals()``. hidiff_mm's own loaders bring their
   own scope: the tests that show it remove the allow-list (fixture ``no_safe_globals``:
   ``tests/test_compat.py``, ``tests/apis/test_checkpoint_loading.py``), the tools run in
   subprocesses, where this file does not apply, and ``tests/test_package_import.py`` checks
   ``import hidiff_mm`` in a fresh process.
"""
import importlib.util
import sys
from pathlib import Path

import pytest
import torch

REPO_ROOT = Path(__file__).resolve().parents[1]


def _load_alone(name: str):
    """The module ``hidiff_mm.<name>``, executed without ``hidiff_mm/__init__.py``."""
    full_name = f'hidiff_mm.{name}'
    if full_name in sys.modules:
        return sys.modules[full_name]
    path = REPO_ROOT / 'hidiff_mm' / (name.replace('.', '/') + '.py')
    spec = importlib.util.spec_from_file_location(full_name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[full_name] = module
    spec.loader.exec_module(module)
    return module


_load_alone('compat').apply()
# Tests load tools by path (runpy, importlib); each finds its tools/quiet.py as a script would.
sys.path.append(str(REPO_ROOT / 'tools'))
_checkpoint_globals = _load_alone('utils.checkpoint_globals')
torch.set_num_threads(2)

from mmagic.utils import register_all_modules  # noqa: E402  (after compat.apply())
from mmengine.registry import init_default_scope  # noqa: E402

register_all_modules()


@pytest.fixture(autouse=True)
def mmagic_default_scope():
    """Each test starts in the ``mmagic`` scope: a Runner built by an earlier test makes
    ``mmengine`` the current default scope, where registry lookups miss MMagic's modules."""
    init_default_scope('mmagic')
    yield


@pytest.fixture(autouse=True)
def mmengine_checkpoints_readable():
    """Test code may ``torch.load(weights_only=True)`` MMEngine checkpoints (see 4. above)."""
    with _checkpoint_globals.mmengine_checkpoint_globals():
        yield


@pytest.fixture
def no_safe_globals():
    """Within the test torch's allow-list of extra globals is empty (not even the entries of
    ``mmengine_checkpoints_readable``): only what hidiff_mm enters itself applies. Restored
    afterwards."""
    saved = torch.serialization.get_safe_globals()
    torch.serialization.clear_safe_globals()
    yield
    torch.serialization.clear_safe_globals()
    torch.serialization.add_safe_globals(saved)
