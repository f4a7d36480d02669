# Copyright (c) hidiff_mm contributors. All rights reserved.
"""Dead-leaves scenes: procedural images with the statistics of natural photographs.

Occluding leaves whose radii follow ``p(r) ~ r^-3`` make an image that is
scale invariant, has a power spectrum close to ``1/f^2`` and sharp,
anti-aliased occlusion edges, as photographs do (Lee, Mumford & Huang, IJCV
2001). Restoration networks trained on such scenes generalise to photographs
far better than on simple shapes (Achddou et al., "Synthetic images as a
regularity prior for image restoration neural networks", SSVM 2021). Each
leaf here is flat, shaded by a linear gradient, or textured by ``1/f^beta``
noise, so that the fine, stochastic texture of grass, gravel or fabric is
present too.
"""
import cv2
import numpy as np


def power_law_radii(rng: np.random.Generator, num: int, r_min: float,
                    r_max: float) -> np.ndarray:
    """``num`` radii with density ``p(r) ~ r^-3`` on ``[r_min, r_max]`` (inverse CDF)."""
    u = rng.uniform(0, 1, num)
    return (r_min**-2 - u * (r_min**-2 - r_max**-2))**-0.5


def power_spectrum_noise(rng: np.random.Generator, size: int, beta: float) -> np.ndarray:
    """A ``(size, size)`` Gaussian field with amplitude spectrum ``1/f^beta``, zero mean, unit
    standard deviation."""
    freq = np.fft.fftfreq(size)
    radius = np.hypot(freq[:, None], freq[None, :])
    radius[0, 0] = 1.0
    spectrum = np.fft.fft2(rng.standard_normal((size, size))) / radius**beta
    spectrum[0, 0] = 0.0
    field = np.fft.ifft2(spectrum).real
    return ((field - field.mean()) / max(float(field.std()), 1e-8)).astype(np.float32)


def _leaf_colours(rng: np.random.Generator, num: int) -> np.ndarray:
    """``(num, 3)`` colours: jittered copies of a palette of 2-6 muted colours of the scene (a
    luminance in [0.03, 0.97] plus a small chroma), as photographs have a few dominant hues."""
    palette_size = int(rng.integers(2, 7))
    luminance = rng.uniform(0.03, 0.97, (palette_size, 1))
    chroma = rng.normal(0, 1, (palette_size, 3)) * rng.uniform(0.02, 0.2, (palette_size, 1))
    palette = luminance + chroma - chroma.mean(axis=1, keepdims=True)
    colours = palette[rng.integers(0, palette_size, num)]
    colours = colours + rng.normal(0, 0.08, (num, 1)) + rng.normal(0, 0.03, (num, 3))
    return np.clip(colours, 0, 1)


def _draw_leaf(rng: np.random.Generator, labels: np.ndarray, label: int, radius: float) -> None:
    """Paint leaf ``label`` (a disk, an ellipse or a polygon of about ``radius``) onto the
    ``int32`` label map, on top of what is there."""
    size = labels.shape[0]
    centre = rng.uniform(-radius, size + radius, 2)
    kind = rng.random()
    if kind < 0.4:
        cv2.circle(labels, (int(centre[0]), int(centre[1])), max(1, int(round(radius))), label,
                   thickness=-1, lineType=cv2.LINE_8)
    elif kind < 0.7:
        axes = (max(1, int(radius)), max(1, int(radius * rng.uniform(0.2, 1.0))))
        cv2.ellipse(labels, (int(centre[0]), int(centre[1])), axes, float(rng.uniform(0, 180)),
                    0, 360, label, thickness=-1, lineType=cv2.LINE_8)
    else:
        angles = np.sort(rng.uniform(0, 2 * np.pi, rng.integers(3, 7)))
        points = centre + radius * np.stack([np.cos(angles), np.sin(angles)], axis=1)
        cv2.fillPoly(labels, [np.round(points).astype(np.int32)], label, lineType=cv2.LINE_8)


def make_dead_leaves_image(rng: np.random.Generator, size: int, supersample: int = 3,
                           coverage: float = 4.0, num_textures: int = 4) -> np.ndarray:
    """Make a random dead-leaves scene.

    Leaves are painted back to front on a ``supersample`` times larger label map
    until their areas sum to ``coverage`` times the image (the smallest radius,
    drawn in [1.5, 8] output pixels per image, sets how busy the scene is; the
    largest is 0.6 of the side). Each leaf gets a colour and one of three looks:
    flat (30%), a linear shading (30%) or one of ``num_textures`` shared
    ``1/f^beta`` textures (``beta`` in [0.8, 1.6]) at its own strength (40%).
    The image is then reduced by area averaging, which anti-aliases the edges.

    Returns:
        ``(size, size, 3)`` float32 RGB image in [0, 1].
    """
    big = size * supersample
    r_min = rng.uniform(1.5, 8.0) * supersample
    r_max = 0.6 * big
    mean_area = np.pi * np.log(r_max / r_min) / (0.5 * (r_min**-2 - r_max**-2))
    num = int(min(20000, coverage * big * big / mean_area)) + 1
    radii = power_law_radii(rng, num, r_min, r_max)
    labels = np.zeros((big, big), np.int32)
    for label in range(1, num):
        _draw_leaf(rng, labels, label, radii[label])

    colours = _leaf_colours(rng, num)
    look = rng.choice(3, num, p=[0.3, 0.3, 0.4])
    img = colours[labels]
    axis = np.arange(big, dtype=np.float32) / big - 0.5
    theta = rng.uniform(0, 2 * np.pi, num)
    slope = np.where(look == 1, rng.uniform(0.1, 0.6, num), 0.0)
    shade = (np.cos(theta)[labels] * axis[None, :] + np.sin(theta)[labels] * axis[:, None])
    img = img + (slope[labels] * shade)[..., None]
    textures = np.stack([power_spectrum_noise(rng, big, rng.uniform(0.8, 1.6))
                         for _ in range(num_textures)])
    which = rng.integers(0, num_textures, num)
    strength = np.where(look == 2, rng.uniform(0.03, 0.2, num), 0.0)
    tint = 1 + rng.uniform(-0.3, 0.3, (num, 3))
    rows, cols = np.indices((big, big))
    texture = textures[which[labels], rows, cols] * strength[labels]
    img = img + texture[..., None] * tint[labels]
    img = np.clip(img, 0, 1).astype(np.float32)
    return cv2.resize(img, (size, size), interpolation=cv2.INTER_AREA)
