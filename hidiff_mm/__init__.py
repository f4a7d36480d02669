"""HI-Diff (Chen et al., NeurIPS 2023) as MMagic / MMEngine plugin modules.

Importing this package registers every HI-Diff module in MMagic's registries so configs can use
them by name. Three more things change in the process, each the least the pinned toolbox needs
(docs/architecture.md, "What importing hidiff_mm changes"): before MMagic is imported, the
``mmcv.ops`` stand-in of :mod:`hidiff_mm.compat` (only where mmcv has no compiled ops), and
torch's weights-only allow-list gains exactly the globals of MMEngine checkpoints
(:func:`hidiff_mm.utils.checkpoint_globals.allow_mmengine_checkpoints`), so that MMagic's own
tools, which reach hidiff_mm only through ``custom_imports``, can resume and load; and it adds
itself to MMEngine's table of config packages, so that ``hidiff_mm::`` config paths resolve
(:mod:`hidiff_mm.utils.mim`).
"""
from . import compat

compat.apply()

from .utils.checkpoint_globals import allow_mmengine_checkpoints  # noqa: E402

allow_mmengine_checkpoints()

from .utils.mim import register_config_package  # noqa: E402

register_config_package()

from . import datasets, engine, evaluation, models, visualization  # noqa: E402,F401

__version__ = '0.1.0'
