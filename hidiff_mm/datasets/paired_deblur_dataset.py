# Copyright (c) hidiff_mm contributors. All rights reserved.
"""Blurred/sharp image pairs stored in two folders with identical file names."""
import os.path as osp
from typing import Dict, List, Optional, Set

from mmagic.datasets import BasicImageDataset
from mmagic.registry import DATASETS

from ..utils.errors import InputError


@DATASETS.register_module()
class PairedDeblurDataset(BasicImageDataset):
    """Paired deblurring dataset over the GoPro / HIDE / RealBlur folder layouts.

    A pair is ``<data_root>/<data_prefix['img']>/<name>`` (blurred input) and
    ``<data_root>/<data_prefix['gt']>/<name>`` (sharp target), matched by
    identical file names as in the official HI-Diff (BasicSR
    ``paired_paths_from_folder``). Examples of ``data_root`` / ``data_prefix``:

    - GoPro crops: ``GoPro/crop/train`` with
      ``dict(img='input_crops', gt='target_crops')``;
    - GoPro test: ``GoPro/test`` with ``dict(img='input', gt='target')``;
    - HIDE / RealBlur test: ``test/HIDE``, ``test/RealBlur_J``, ...;
    - RealBlur train: ``RealBlur/train/RealBlur_J``.

    Listing and path building are MMagic's ``BasicImageDataset`` (so
    ``filename_tmpl``, ``ann_file``, ``img_suffix`` and ``recursive`` keep their
    meaning); this class sorts the pairs by name and checks the folders at
    build time:

    - a missing folder raises ``FileNotFoundError``, an empty one ``ValueError``;
    - without ``ann_file``, folders holding different numbers of images raise
      ``ValueError``;
    - an image without its partner raises ``FileNotFoundError`` naming both
      the found and the expected path.

    Unreadable images and pairs of different sizes are found at read time by
    :class:`LoadImagePair`.

    Args:
        data_root: root folder of one split.
        data_prefix: sub-folder per key, relative to ``data_root``.
        search_key: the key whose folder is listed. Defaults to ``'gt'``, as
            BasicSR lists the GT folder.
        filename_tmpl: per-key template around the shared name; ``'{}'``
            (identical names) for keys not given.
        **kwargs: the other ``BasicImageDataset`` arguments (``pipeline``,
            ``metainfo``, ``test_mode``, ``ann_file``, ...).
    """

    METAINFO = dict(dataset_type='paired_deblur', task_name='deblurring')

    def __init__(self,
                 data_root: str = '',
                 data_prefix: Optional[Dict[str, str]] = None,
                 search_key: str = 'gt',
                 filename_tmpl: Optional[Dict[str, str]] = None,
                 **kwargs) -> None:
        super().__init__(
            data_root=data_root,
            data_prefix=dict(img='input', gt='target') if data_prefix is None else data_prefix,
            search_key=search_key,
            filename_tmpl=dict(filename_tmpl or {}),
            **kwargs)

    def load_data_list(self) -> List[dict]:
        """List and check the pairs.

        Returns:
            One ``dict(key=name, img_path=..., gt_path=...)`` per pair, sorted by name.
        """
        listed = {key: self._list_images(key) for key in self.data_prefix}
        if not self.use_ann_file:
            self._check_counts(listed)
        data_list = sorted(super().load_data_list(), key=lambda data: data['key'])
        for data in data_list:
            search_path = data[f'{self.search_key}_path']
            for key in self.data_prefix:
                path = data[f'{key}_path']
                if path not in listed[key]:
                    raise FileNotFoundError(
                        f"Missing partner of '{search_path}': expected '{path}' "
                        f"(key '{key}'; pairs share their file name).")
        return data_list

    def _list_images(self, key: str) -> Set[str]:
        """Paths of the images in the folder of ``key``; the folder must exist and hold some."""
        folder = self.data_prefix[key]
        if not self.file_backend.isdir(folder):
            raise FileNotFoundError(
                f"Image folder '{folder}' for key '{key}' does not exist; expected "
                f"data_root/data_prefix['{key}'] to be a folder of images.")
        paths = {
            osp.join(folder, name)
            for name in self.file_backend.list_dir_or_file(
                folder, list_dir=False, suffix=self.img_suffix, recursive=self.recursive)
        }
        if not paths:
            raise InputError(f"Image folder '{folder}' for key '{key}' holds no images "
                             f'with a suffix in {self.img_suffix}.')
        return paths

    def _check_counts(self, listed: Dict[str, Set[str]]) -> None:
        """Raise if the folders hold different numbers of images."""
        counts = {key: len(paths) for key, paths in listed.items()}
        if len(set(counts.values())) > 1:
            names = {key: {osp.relpath(p, self.data_prefix[key]) for p in paths}
                     for key, paths in listed.items()}
            every = set.intersection(*names.values())
            unmatched = {key: sorted(n - every)[:5] for key, n in names.items()}
            detail = '; '.join(f"'{self.data_prefix[key]}': {counts[key]} images"
                               f' (unmatched, first 5: {unmatched[key]})' for key in listed)
            raise InputError(f'Paired folders hold different numbers of images: {detail}.')
