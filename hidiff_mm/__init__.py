"""HI-Diff (Chen et al., NeurIPS 2023) as MMagic / MMEngine plugin modules.

Importing this package registers every HI-Diff module in MMagic's registries so configs can use
them by name. Before it imports MMagic it installs, if the environment needs it, the one thing
the pinned toolbox needs in order to import: the ``mmcv.ops`` stand-in of
:mod:`hidiff_mm.compat`. Nothing else in the process changes (checkpoint loading allow-lists
MMEngine's globals only inside hidiff_mm's own loads, see
:mod:`hidiff_mm.utils.checkpoint_globals`).
"""
from . import compat

compat.apply()

from . import datasets, engine, evaluation, models, visualization  # noqa: E402,F401

__version__ = '0.1.0'
