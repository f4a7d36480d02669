"""Damaged and malicious weight files for the tests of everything that loads one."""
import os
from pathlib import Path
from typing import Dict

import torch


class Payload:
    """Unpickles as ``func(*args)``: what a malicious checkpoint would run."""

    def __init__(self, func, *args) -> None:
        self.func, self.args = func, args

    def __reduce__(self):
        return self.func, self.args


def malicious_checkpoint(path: Path, marker: Path) -> Path:
    """A torch file whose unpickling would create ``marker`` (via ``os.system``)."""
    torch.save({'state_dict': {'w': torch.zeros(1)}, 'meta': Payload(os.system, f'touch {marker}')},
               path)
    return path


def damaged_copies(good: Path, folder: Path) -> Dict[str, Path]:
    """Copies of the torch file ``good``: empty, truncated to half (no zip directory), cut
    after 20 bytes, and a text file with the .pth name."""
    data = good.read_bytes()
    variants = {'empty': b'', 'half': data[:len(data) // 2], 'head': data[:20],
                'text': b'this is not a checkpoint\n'}
    paths = {}
    for name, content in variants.items():
        paths[name] = folder / f'{name}.pth'
        paths[name].write_bytes(content)
    return paths
