import pytest
from engine_utils import run_tool


@pytest.fixture(scope='session')
def tiny_data(tmp_path_factory):
    """8 training and 2 test pairs of 32x32 procedural blur, in the GoPro layout."""
    root = str(tmp_path_factory.mktemp('tiny_blur'))
    run_tool(['tools/make_synthetic_blur.py', '--out', root, '--num-train', '8', '--num-val', '2',
              '--size', '32', '--seed', '1'])
    return root
