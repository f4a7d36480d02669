# Copyright (c) hidiff_mm contributors. All rights reserved.
"""MMagic's inference API runs HI-Diff: its restoration inferencer gives, for the same seed, the
image ``hidiff_mm.apis.deblur`` gives, bit for bit."""
import cv2
import numpy as np
import pytest

from hidiff_mm import compat
from hidiff_mm.apis import deblur, init_model
from hidiff_mm.apis.demo_model import DEMO_CONFIG, DEMO_WEIGHTS


def test_mmagic_inferencer_imports():
    from mmagic.apis import MMagicInferencer  # needs controlnet_aux (or the stand-in)
    assert 'Deblurring' in {task for task in MMagicInferencer.get_inference_supported_tasks()}


@pytest.mark.parametrize('seed', [0, 7])
def test_mmagic_deblurring_inferencer_equals_deblur(tmp_path, seed):
    from mmagic.apis.inferencers import Inferencers
    rng = np.random.default_rng(seed)
    blurry = cv2.GaussianBlur(rng.integers(0, 256, (40, 48, 3), dtype=np.uint8), (5, 5), 2)
    path, out = str(tmp_path / 'blurry.png'), str(tmp_path / 'mmagic.png')
    cv2.imwrite(path, blurry)
    inferencer = Inferencers(task='Deblurring', config=DEMO_CONFIG, ckpt=DEMO_WEIGHTS,
                             device='cpu', seed=seed)
    _, image = inferencer(img=path, result_out_dir=out)
    expected = deblur(init_model(DEMO_CONFIG, DEMO_WEIGHTS), path, seed=seed)
    assert image.dtype == np.uint8 and np.array_equal(image, expected)
    assert np.array_equal(cv2.imread(out), expected)
    assert not np.array_equal(expected, blurry)


@pytest.mark.skipif(not compat.controlnet_aux_stand_in_needed(),
                    reason='controlnet_aux is installed')
def test_controlnet_aux_stand_in_raises_on_use():
    import controlnet_aux
    with pytest.raises(RuntimeError, match='pip install controlnet-aux'):
        controlnet_aux.HEDdetector.from_pretrained('lllyasviel/Annotators')
    with pytest.raises(RuntimeError, match='controlnet_aux.HEDdetector is not installed'):
        controlnet_aux.HEDdetector()
    with pytest.raises(ImportError):
        exec('from controlnet_aux import OpenposeDetector', {})
