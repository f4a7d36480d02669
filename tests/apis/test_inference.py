# Copyright (c) hidiff_mm contributors. All rights reserved.
"""hidiff_mm.apis: model loading, image conversion, seeds, steps, self-ensemble."""
import copy

import cv2
import numpy as np
import pytest
import torch
from apis_helpers import predict, smooth_image

from hidiff_mm.apis import (deblur, image_to_tensor, init_model, read_image, tensor_to_image,
                            to_bgr_uint8)
from hidiff_mm.utils.dihedral import dihedral, dihedral_inverse


def test_init_model_errors(tiny_files, tmp_path):
    config, checkpoint = tiny_files
    with pytest.raises(FileNotFoundError, match='nope.pth'):
        init_model(config, str(tmp_path / 'nope.pth'))
    with pytest.raises(FileNotFoundError, match='config file not found'):
        init_model(str(tmp_path / 'nope.py'))
    state = torch.load(checkpoint, weights_only=True)['state_dict']
    official = tmp_path / 'net_g.pth'
    torch.save(dict(params={k[len('generator.'):]: v for k, v in state.items()
                            if k.startswith('generator.')}), official)
    with pytest.raises(ValueError, match='convert_official_checkpoint'):
        init_model(config, str(official))
    partial = tmp_path / 'partial.pth'
    torch.save({k: v for k, v in state.items() if not k.startswith('generator.output')}, partial)
    with pytest.raises(ValueError, match='generator.output.weight'):
        init_model(config, str(partial))


def test_checkpoint_without_stage1_encoder_loads(tiny_files, tiny_model, tmp_path):
    config, checkpoint = tiny_files
    state = torch.load(checkpoint, weights_only=True)['state_dict']
    test_only = tmp_path / 'test_only.pth'  # what a converted official test release holds
    torch.save(dict(state_dict={f'module.{k}': v for k, v in state.items()
                                if not k.startswith('prior_head.encoder_s1.')}), test_only)
    model = init_model(config, str(test_only))
    img = smooth_image(0, 24, 40)
    assert not model.training and model.cfg.model.type == 'HIDiff'
    assert np.array_equal(deblur(model, img, seed=1), deblur(tiny_model, img, seed=1))


def test_deblur_is_the_editor_prediction(tiny_model, tmp_path):
    img = smooth_image(1, 29, 45)  # padded to 32 x 48 and cropped back
    out = deblur(tiny_model, img, seed=7)
    assert out.shape == img.shape and out.dtype == np.uint8
    with torch.no_grad():
        ref = tiny_model.forward_tensor(image_to_tensor(tiny_model, img),
                                        generator=torch.Generator().manual_seed(7))
    assert np.array_equal(out, tensor_to_image(tiny_model, ref))
    path = tmp_path / 'in.png'
    cv2.imwrite(str(path), img)
    assert np.array_equal(deblur(tiny_model, str(path), seed=7), out)
    assert np.array_equal(deblur(tiny_model, path, seed=7), out)  # pathlib.Path too


def test_seed_controls_the_only_random_draw(tiny_model):
    x = image_to_tensor(tiny_model, smooth_image(2, 32, 32))
    a = predict(tiny_model, x, torch.Generator().manual_seed(3))
    b = predict(tiny_model, x, torch.Generator().manual_seed(3))
    c = predict(tiny_model, x, torch.Generator().manual_seed(4))
    assert torch.equal(a, b) and not torch.equal(a, c)
    torch.manual_seed(11)
    d = predict(tiny_model, x)  # no generator: torch's global RNG
    torch.manual_seed(11)
    assert torch.equal(d, predict(tiny_model, x))


def test_input_conversions(tiny_model, tmp_path):
    bgr = smooth_image(3, 24, 32)
    gray = cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY)
    as_bgr = cv2.cvtColor(gray, cv2.COLOR_GRAY2BGR)
    assert np.array_equal(to_bgr_uint8(gray), as_bgr)
    assert np.array_equal(to_bgr_uint8(gray[..., None]), as_bgr)
    bgra = np.dstack([bgr, np.full(bgr.shape[:2], 77, np.uint8)])
    assert np.array_equal(to_bgr_uint8(bgra), bgr)
    assert np.array_equal(to_bgr_uint8(bgr.astype(np.uint16) * 257), bgr)
    assert deblur(tiny_model, gray, seed=0).shape == bgr.shape  # colour output
    assert np.array_equal(deblur(tiny_model, bgra, seed=0), deblur(tiny_model, bgr, seed=0))
    # files: 16-bit grayscale PNG and RGBA PNG are converted on reading
    cv2.imwrite(str(tmp_path / 'g16.png'), gray.astype(np.uint16) * 257)
    cv2.imwrite(str(tmp_path / 'rgba.png'), bgra)
    assert np.array_equal(read_image(tmp_path / 'g16.png'), as_bgr)
    assert np.array_equal(read_image(tmp_path / 'rgba.png'), bgr)
    with pytest.raises(TypeError, match='uint8'):
        to_bgr_uint8(bgr.astype(np.float32))
    with pytest.raises(ValueError, match='0x4 .* no pixels'):
        to_bgr_uint8(bgr[:4, :0])
    with pytest.raises(ValueError, match='shape'):
        to_bgr_uint8(np.zeros((8, 8, 2), np.uint8))


def test_unreadable_and_missing_files_are_named(tiny_model, tmp_path):
    bad = tmp_path / 'broken.png'
    bad.write_bytes(b'\x89PNG\r\n\x1a\n not really a png')
    with pytest.raises(ValueError, match='broken.png'):
        deblur(tiny_model, str(bad))
    (tmp_path / 'empty.jpg').write_bytes(b'')
    with pytest.raises(ValueError, match='empty.jpg'):
        read_image(tmp_path / 'empty.jpg')
    with pytest.raises(FileNotFoundError, match='missing.png'):
        deblur(tiny_model, str(tmp_path / 'missing.png'))


def test_steps(tiny_model):
    img = smooth_image(4, 32, 40)
    full = deblur(tiny_model, img, seed=2)
    assert np.array_equal(deblur(tiny_model, img, seed=2, steps=8), full)
    x = image_to_tensor(tiny_model, img)
    few = predict(tiny_model, x, torch.Generator().manual_seed(2), steps=3)
    assert few.shape == x.shape and torch.isfinite(few).all()
    with pytest.raises(ValueError, match='num_inference_steps'):
        deblur(tiny_model, img, steps=0)
    with pytest.raises(ValueError, match='num_inference_steps'):
        deblur(tiny_model, img, steps=9)


class Pointwise(torch.nn.Module):
    def forward(self, img: torch.Tensor, prior: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(3 * img - 1) + 0 * prior.mean()


def test_self_ensemble(tiny_model):
    x = image_to_tensor(tiny_model, smooth_image(5, 24, 40))  # not square, padded
    out = predict(tiny_model, x, torch.Generator().manual_seed(9), self_ensemble=True)
    # by hand: 8 transformed predictions (one z_T draw each, from the same generator), undone
    gen = torch.Generator().manual_seed(9)
    preds = [dihedral_inverse(predict(tiny_model, dihedral(x, f), gen), f)
             for f in range(8)]
    assert torch.allclose(out, torch.stack(preds).mean(0), atol=1e-6)
    # an equivariant (pointwise) predictor is unchanged by the ensemble
    pointwise = copy.deepcopy(tiny_model)
    pointwise.generator = Pointwise()
    single = predict(pointwise, x)
    assert torch.allclose(predict(pointwise, x, self_ensemble=True), single, atol=1e-6)
    img_out = deblur(tiny_model, smooth_image(5, 24, 40), seed=9, self_ensemble=True)
    assert np.array_equal(img_out, tensor_to_image(tiny_model, out))


@pytest.mark.parametrize('h,w', [(1, 1), (3, 5), (1, 20), (7, 2)])
def test_tiny_images_are_deblurred(tiny_model, h, w):
    """Sides shorter than the padding to 8 (reflect cannot reach) still predict, also tiled and
    with the self-ensemble; the output has the input's size."""
    img = smooth_image(h * 31 + w, h, w)
    out = deblur(tiny_model, img, seed=0)
    assert out.shape == (h, w, 3) and out.dtype == np.uint8
    with torch.no_grad():
        ref = tiny_model.forward_tensor(image_to_tensor(tiny_model, img),
                                        generator=torch.Generator().manual_seed(0))
    assert np.array_equal(out, tensor_to_image(tiny_model, ref))
    assert deblur(tiny_model, img, seed=0, tile=8, overlap=0, self_ensemble=True).shape == \
        (h, w, 3)
