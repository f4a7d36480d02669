"""HI-Diff (Chen et al., NeurIPS 2023) as MMagic / MMEngine plugin modules.

Importing this package first applies :mod:`hidiff_mm.compat` (what the pinned
toolbox versions need on a current stack), then registers every HI-Diff module
in MMagic's registries so configs can use them by name.
"""
from . import compat

compat.apply()

from . import datasets, engine, evaluation, models, visualization  # noqa: E402,F401

__version__ = '0.1.0'
