# Copyright (c) hidiff_mm contributors. All rights reserved.
"""Hide the third-party noise of the pinned stack that a tool's user cannot act on.

Each tool that imports the toolbox calls :func:`quiet_imports` first, before it imports
hidiff_mm; importing hidiff_mm itself hides nothing. It then

* ignores the known warnings of :data:`KNOWN_WARNINGS` for the rest of the process (diffusers
  0.28's deprecated import paths that MMagic 1.2.0 uses, torch's ``torch.jit.script``
  deprecation that MMagic triggers, setuptools' ``pkg_resources`` deprecation that MMEngine
  triggers, numpy's ``np.bool8``);
* imports hidiff_mm (and with it MMagic's models) while dropping the five ``Warning:
  mmcv.ops.... are not available`` lines that MMagic's StyleGAN/MSPIE editors ``print`` when
  mmcv has no compiled ops (they take pure-PyTorch paths; HI-Diff uses none of them). Every
  other line is printed.

``--debug`` on the command line or ``HIDIFF_DEBUG=1`` (see ``hidiff_mm/utils/cli.py``) shows
everything. *Delete an entry when* the pinned package stops emitting it.
"""
import contextlib
import io
import os
import re
import sys
import warnings
from typing import Tuple, Type

KNOWN_WARNINGS: Tuple[Tuple[Type[Warning], str], ...] = (
    (FutureWarning, r'`\w+` is deprecated and will be removed in version'),  # diffusers
    (FutureWarning, r'`torch\.jit\.script` is deprecated'),
    (UserWarning, r'pkg_resources is deprecated as an API'),
    (DeprecationWarning, r'`np\.bool8` is a deprecated alias'),
)
MMCV_OPS_LINE = re.compile(r'^Warning: mmcv\.ops\..*are ?not available\.$')


def debug_requested() -> bool:
    """``--debug`` among the arguments or ``HIDIFF_DEBUG`` set (as ``hidiff_mm.utils.cli``)."""
    return '--debug' in sys.argv[1:] or os.environ.get('HIDIFF_DEBUG', '') not in ('', '0')


class _DropLines(io.TextIOBase):
    """A text stream that forwards every line to ``target`` except those matching ``pattern``."""

    def __init__(self, target, pattern: re.Pattern) -> None:
        self.target, self.pattern, self.pending = target, pattern, ''

    def write(self, text: str) -> int:
        self.pending += text
        *lines, self.pending = self.pending.split('\n')
        for line in lines:
            if not self.pattern.match(line):
                self.target.write(line + '\n')
        return len(text)

    def flush(self) -> None:
        if self.pending:
            self.target.write(self.pending)
            self.pending = ''
        self.target.flush()


def quiet_imports() -> None:
    """Ignore :data:`KNOWN_WARNINGS` and import hidiff_mm without MMagic's mmcv.ops lines,
    unless debugging was asked for."""
    if debug_requested():
        return
    for category, message in KNOWN_WARNINGS:
        warnings.filterwarnings('ignore', message=message, category=category)
    stream = _DropLines(sys.stdout, MMCV_OPS_LINE)
    with contextlib.redirect_stdout(stream):
        import hidiff_mm  # noqa: F401
    stream.flush()
