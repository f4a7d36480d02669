# Copyright (c) hidiff_mm contributors. All rights reserved.
"""Single hidiff_mm modules without the toolbox, for the tools that need no model.

``import hidiff_mm.datasets.synthetic`` first runs ``hidiff_mm/__init__.py``, which imports
MMagic and torch (seconds, about 1 GB). ``tools/make_synthetic_blur.py`` and
``tools/dataset_converters/gopro_patches.py`` need only numpy and OpenCV, so they load their
modules with :func:`import_alone` instead.
"""
import importlib
import importlib.util
import os.path as osp
import sys
from types import ModuleType


def import_alone(name: str) -> ModuleType:
    """``hidiff_mm.<name>``, executed without ``hidiff_mm/__init__.py``.

    Only for modules that import no other part of hidiff_mm. Where the package is loaded
    anyway (the tests), its module is returned instead.
    """
    if 'hidiff_mm' in sys.modules:
        return importlib.import_module(f'hidiff_mm.{name}')
    package = importlib.util.find_spec('hidiff_mm')
    if package is None:
        raise ModuleNotFoundError("No module named 'hidiff_mm': install it (pip install -e .) or "
                                  'run from the repository root with PYTHONPATH=.')
    path = osp.join(package.submodule_search_locations[0], *name.split('.')) + '.py'
    alias = '_hidiff_mm_' + name.replace('.', '_')  # top-level: picklable for worker processes
    spec = importlib.util.spec_from_file_location(alias, path)
    module = sys.modules[alias] = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
