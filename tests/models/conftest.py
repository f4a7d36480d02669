from mmagic.utils import register_all_modules

import hidiff_mm  # noqa: F401  (registers the HI-Diff modules)

register_all_modules()
