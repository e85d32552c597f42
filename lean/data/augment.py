"""Random crop with zero padding and horizontal flip, on a whole batch at once."""

import numpy as np


def random_crop_flip(x: np.ndarray, rng: np.random.Generator, pad: int = 4, flip: bool = True) -> np.ndarray:
    """Shift each image of ``x`` (n, h, w, c) by a random offset in [-pad, pad] (zero fill) and flip half.

    Equivalent to padding by ``pad`` and taking a random h x w crop, as the CIFAR ResNet papers do (He et al.,
    CVPR 2016, section 4.2: 4 pixels of padding, a random 32x32 crop, a random horizontal flip).

    Parameters
    ----------
    x : np.ndarray
        (n, h, w, c) images, any dtype (uint8 as datasets keep them).
    rng : np.random.Generator
        Source of the offsets and flips: one draw of n offsets per axis, then n flips.
    pad : int
        Largest shift in pixels, >= 0 (0: no shift).
    flip : bool
        Mirror each image left-right with probability 1/2.

    Returns
    -------
    np.ndarray
        (n, h, w, c), ``x``'s dtype; a new array.
    """
    n, h, w, c = x.shape
    out = np.zeros_like(x)
    if pad > 0:
        padded = np.zeros((n, h + 2 * pad, w + 2 * pad, c), dtype=x.dtype)
        padded[:, pad:pad + h, pad:pad + w] = x
        dy = rng.integers(0, 2 * pad + 1, size=n)
        dx = rng.integers(0, 2 * pad + 1, size=n)
        rows = dy[:, None] + np.arange(h)[None, :]          # (n, h)
        cols = dx[:, None] + np.arange(w)[None, :]          # (n, w)
        out = padded[np.arange(n)[:, None, None], rows[:, :, None], cols[:, None, :]]
    else:
        out[...] = x
    if flip:
        flips = rng.random(n) < 0.5
        out[flips] = out[flips, :, ::-1]
    return out
