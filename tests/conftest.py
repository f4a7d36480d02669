# Copyright (c) hidiff_mm contributors. All rights reserved.
"""Session setup shared by all tests.

1. Apply :mod:`hidiff_mm.compat` before anything imports mmagic. ``compat.py`` is loaded on its
   own (as ``hidiff_mm.compat``) instead of through ``import hidiff_mm``, so a broken module
   elsewhere in the package fails only the tests that import it, not the whole session. A later
   ``import hidiff_mm`` reuses this module object.
2. Two torch threads (the CI machines have two cores).
3. Register MMagic's modules and make ``mmagic`` the default scope, as MMagic's own tests do.
"""
import importlib.util
import sys
from pathlib import Path

import pytest
import torch

REPO_ROOT = Path(__file__).resolve().parents[1]


def _load_compat():
    if 'hidiff_mm.compat' in sys.modules:
        return sys.modules['hidiff_mm.compat']
    spec = importlib.util.spec_from_file_location('hidiff_mm.compat',
                                                  REPO_ROOT / 'hidiff_mm' / 'compat.py')
    module = importlib.util.module_from_spec(spec)
    sys.modules['hidiff_mm.compat'] = module
    spec.loader.exec_module(module)
    return module


_load_compat().apply()
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
