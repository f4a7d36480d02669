"""pad_to_multiple: the official reflect padding where it fits, edge repetition beyond it."""
import pytest
import torch
import torch.nn.functional as F

from hidiff_mm.models.editors.prediction import pad_to_multiple


def padded_indices(size: int, multiple: int) -> list:
    """Source row (or column) of each padded position, written out by hand: the image, then
    its reflection without the edge (as far as the image reaches), then the last one repeated."""
    pad = (-size) % multiple
    reflected = [size - 2 - k for k in range(min(pad, size - 1))]
    rows = list(range(size)) + reflected
    return rows + [rows[-1]] * (size + pad - len(rows))


@pytest.mark.parametrize('h,w', [(29, 45), (8, 16), (5, 7), (9, 5)])
def test_equals_official_reflect_padding_where_it_fits(h, w):
    x = torch.randn(2, 3, h, w, dtype=torch.float64)
    expected = F.pad(x, (0, (-w) % 8, 0, (-h) % 8), 'reflect')
    assert torch.equal(pad_to_multiple(x, 8), expected)


@pytest.mark.parametrize('h,w', [(1, 1), (1, 9), (3, 5), (2, 17), (4, 3), (16, 1)])
def test_short_sides_are_reflected_then_repeated(h, w):
    x = torch.randn(1, 3, h, w, dtype=torch.float64)
    out = pad_to_multiple(x, 8)
    rows, cols = padded_indices(h, 8), padded_indices(w, 8)
    assert out.shape == (1, 3, len(rows), len(cols)) and out.shape[-2] % 8 == 0
    assert out.shape[-1] % 8 == 0
    assert torch.equal(out, x[..., rows, :][..., cols])
    assert torch.equal(out[..., :h, :w], x)


def test_one_pixel_becomes_a_constant_block_and_bad_sizes_are_refused():
    x = torch.tensor([0.25, 0.5, 0.75]).view(1, 3, 1, 1)
    out = pad_to_multiple(x, 8)
    assert out.shape == (1, 3, 8, 8) and torch.equal(out, x.expand(1, 3, 8, 8))
    same = torch.randn(1, 3, 16, 8)
    assert pad_to_multiple(same, 8) is same
    with pytest.raises(ValueError, match='empty image of size 5x0'):
        pad_to_multiple(torch.zeros(1, 3, 0, 5), 8)
    with pytest.raises(ValueError, match='positive integer'):
        pad_to_multiple(same, 0)
