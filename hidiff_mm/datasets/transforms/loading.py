# Copyright (c) hidiff_mm contributors. All rights reserved.
"""Loading of a blurred/sharp image pair with errors that name the files."""
from typing import Sequence

from mmagic.datasets.transforms import LoadImageFromFile
from mmagic.registry import TRANSFORMS
from mmcv.transforms import BaseTransform

from ...utils.errors import ConfigError, InputError


@TRANSFORMS.register_module()
class LoadImagePair(BaseTransform):
    """Load the images of one pair with MMagic's ``LoadImageFromFile`` and check them.

    (Unlike MMagic's ``LoadPairedImageFromFile``, which splits one image file
    holding both domains side by side, the images here are separate files.)

    One ``LoadImageFromFile`` per key does the reading, so the results carry the
    same entries as with MMagic's loader (``{key}`` as an ``(H, W, C)`` array,
    ``ori_{key}_shape``, ``{key}_channel_order``, ``{key}_color_type``). This
    transform adds the checks MMagic's loader lacks for paired data:

    - a file that cannot be read or decoded raises ``ValueError`` naming it
      (a missing file keeps its ``FileNotFoundError``). The decoders fail in
      backend-specific, anonymous ways: cv2 returns ``None`` (then
      ``AttributeError``) or asserts in ``cvtColor``; Pillow raises
      ``UnidentifiedImageError``.
    - images whose height or width differ from those of the first key raise
      ``ValueError`` naming both files and both sizes.

    Required keys: ``{key}_path`` for every key.

    Args:
        keys: result keys to load; the first one is the reference size.
        **load_kwargs: arguments for every ``LoadImageFromFile``, e.g.
            ``color_type``, ``channel_order``, ``imdecode_backend``,
            ``backend_args``.
    """

    def __init__(self, keys: Sequence[str] = ('img', 'gt'), **load_kwargs) -> None:
        if len(keys) == 0:
            raise ConfigError('LoadImagePair needs at least one key.')
        self.keys = list(keys)
        self.loaders = [LoadImageFromFile(key=key, **load_kwargs) for key in self.keys]

    def transform(self, results: dict) -> dict:
        """Load every key and check that the heights and widths agree."""
        for loader in self.loaders:
            path = results[f'{loader.key}_path']
            try:
                results = loader(results)
            except FileNotFoundError:
                raise
            except Exception as err:  # decoder failures differ per backend, see above
                raise InputError(f"Cannot read image '{path}' (key '{loader.key}'): "
                                 f'{type(err).__name__}: {err}') from err
        ref = self.keys[0]
        ref_hw = results[ref].shape[:2]
        for key in self.keys[1:]:
            if results[key].shape[:2] != ref_hw:
                raise InputError(
                    f"Images of a pair differ in size: '{results[f'{ref}_path']}' is "
                    f"{ref_hw[0]}x{ref_hw[1]} (HxW) but '{results[f'{key}_path']}' is "
                    f'{results[key].shape[0]}x{results[key].shape[1]}.')
        return results

    def __repr__(self) -> str:
        return f'{self.__class__.__name__}(keys={self.keys}, loaders={self.loaders})'
