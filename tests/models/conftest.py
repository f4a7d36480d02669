import hidiff_mm  # noqa: F401  (registers the HI-Diff modules)
from mmagic.utils import register_all_modules

register_all_modules()
