# Copyright (c) hidiff_mm contributors. All rights reserved.
"""The package's ``.mim`` folder: configs, tools and the demo model, the OpenMMLab way.

Like MMagic (``mmagic/.mim``), hidiff_mm carries its ``configs/``, ``tools/``, ``demo_model/``
and ``model-index.yml`` inside the package: in the repository ``hidiff_mm/.mim`` holds symbolic
links to those folders, and building a wheel copies their files (``setup.cfg``,
``[options.package_data]``). :func:`mim_path` finds them in a checkout, an editable install and
an installed wheel alike.

MMEngine resolves ``pkg::path`` config paths (``_base_ = ['hidiff_mm::...']``,
``mmengine.hub.get_config``) only for the packages of its fixed table
``mmengine.config.utils.MODULE2PACKAGE``; :func:`register_config_package` (run by
``import hidiff_mm``) adds ``hidiff_mm`` to it, and MMEngine then reads
``<installed hidiff_mm>/.mim/configs/<path>``. *Delete when:* MMEngine lets packages register
themselves (0.10.7 does not).
"""
import os.path as osp

PACKAGE_DIR = osp.dirname(osp.dirname(osp.abspath(__file__)))
MIM_DIR = osp.join(PACKAGE_DIR, '.mim')


def mim_path(*parts: str) -> str:
    """``hidiff_mm/.mim/<parts>``, e.g. ``mim_path('configs', 'hidiff_gopro.py')``."""
    return osp.join(MIM_DIR, *parts)


def register_config_package() -> None:
    """Let MMEngine resolve ``hidiff_mm::<folder>/<file>.py`` config paths (idempotent)."""
    from mmengine.config.utils import MODULE2PACKAGE
    MODULE2PACKAGE.setdefault('hidiff_mm', 'hidiff_mm')
