"""Max and average pooling on channels-last activations (n, h, w, c); one image per parallel iteration."""

import numpy as np

from ._config import PARALLEL_JIT, float_dtype, njit, prange
from .conv import conv_output_size


@njit(**PARALLEL_JIT)
def _maxpool_forward(x, y, argmax, k, stride, pad):
    n, h, w, c = x.shape
    _, oh, ow, _ = y.shape
    for b in prange(n):
        for oy in range(oh):
            for ox in range(ow):
                for ch in range(c):
                    best = -np.inf
                    best_at = -1
                    for i in range(k):
                        iy = oy * stride - pad + i
                        if iy < 0 or iy >= h:
                            continue
                        for j in range(k):
                            ix = ox * stride - pad + j
                            if ix < 0 or ix >= w:
                                continue
                            v = x[b, iy, ix, ch]
                            if v > best or best_at < 0:
                                best = v
                                best_at = iy * w + ix
                    y[b, oy, ox, ch] = best
                    argmax[b, oy, ox, ch] = best_at


@njit(**PARALLEL_JIT)
def _maxpool_backward(dy, argmax, dx):
    n, h, w, c = dx.shape
    _, oh, ow, _ = dy.shape
    for b in prange(n):
        for iy in range(h):
            for ix in range(w):
                for ch in range(c):
                    dx[b, iy, ix, ch] = 0.0
        for oy in range(oh):
            for ox in range(ow):
                for ch in range(c):
                    at = argmax[b, oy, ox, ch]
                    dx[b, at // w, at % w, ch] += dy[b, oy, ox, ch]


@njit(**PARALLEL_JIT)
def _avgpool_forward(x, y, k, stride, pad):
    """Average over the window including padding (count_include_pad), as most CIFAR nets use."""
    n, h, w, c = x.shape
    _, oh, ow, _ = y.shape
    inv = 1.0 / (k * k)
    for b in prange(n):
        for oy in range(oh):
            for ox in range(ow):
                for ch in range(c):
                    y[b, oy, ox, ch] = 0.0
                for i in range(k):
                    iy = oy * stride - pad + i
                    if iy < 0 or iy >= h:
                        continue
                    for j in range(k):
                        ix = ox * stride - pad + j
                        if ix < 0 or ix >= w:
                            continue
                        for ch in range(c):
                            y[b, oy, ox, ch] += x[b, iy, ix, ch]
                for ch in range(c):
                    y[b, oy, ox, ch] *= inv


@njit(**PARALLEL_JIT)
def _avgpool_backward(dy, dx, k, stride, pad):
    n, h, w, c = dx.shape
    _, oh, ow, _ = dy.shape
    inv = 1.0 / (k * k)
    for b in prange(n):
        for iy in range(h):
            for ix in range(w):
                for ch in range(c):
                    dx[b, iy, ix, ch] = 0.0
        for oy in range(oh):
            for ox in range(ow):
                for i in range(k):
                    iy = oy * stride - pad + i
                    if iy < 0 or iy >= h:
                        continue
                    for j in range(k):
                        ix = ox * stride - pad + j
                        if ix < 0 or ix >= w:
                            continue
                        for ch in range(c):
                            dx[b, iy, ix, ch] += dy[b, oy, ox, ch] * inv


def _check_pool(x, k, stride, pad):
    if x.ndim != 4:
        raise ValueError(f"pooling input must be (n, h, w, c); got shape {x.shape}")
    if k < 1 or stride < 1 or pad < 0 or pad * 2 > k:
        raise ValueError(f"bad pooling window: kernel {k}, stride {stride}, padding {pad}")
    return conv_output_size(x.shape[1], k, stride, pad), conv_output_size(x.shape[2], k, stride, pad)


def maxpool_forward(x, k, stride, pad=0):
    """Returns ``(y, argmax)``: y (n, oh, ow, c) and the flat ``iy * w + ix`` of each maximum."""
    x = np.ascontiguousarray(x, dtype=float_dtype(x))
    oh, ow = _check_pool(x, k, stride, pad)
    y = np.empty((x.shape[0], oh, ow, x.shape[3]), dtype=x.dtype)
    argmax = np.empty(y.shape, dtype=np.int64)
    _maxpool_forward(x, y, argmax, k, stride, pad)
    return y, argmax


def maxpool_backward(dy, argmax, input_shape):
    dtype = float_dtype(dy)
    dx = np.empty(input_shape, dtype=dtype)
    _maxpool_backward(np.ascontiguousarray(dy, dtype=dtype), argmax, dx)
    return dx


def avgpool_forward(x, k, stride, pad=0):
    x = np.ascontiguousarray(x, dtype=float_dtype(x))
    oh, ow = _check_pool(x, k, stride, pad)
    y = np.empty((x.shape[0], oh, ow, x.shape[3]), dtype=x.dtype)
    _avgpool_forward(x, y, k, stride, pad)
    return y


def avgpool_backward(dy, input_shape, k, stride, pad=0):
    dtype = float_dtype(dy)
    dx = np.empty(input_shape, dtype=dtype)
    _avgpool_backward(np.ascontiguousarray(dy, dtype=dtype), dx, k, stride, pad)
    return dx
