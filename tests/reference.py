"""Plain NumPy references for every kernel: slow, obvious, float64."""

import numpy as np


def conv2d(x, w, bias=None, stride=1, padding=0, groups=1):
    """x (n, h, w, c), w (k, c // groups, r, s) -> (n, oh, ow, k), by summing shifted slices."""
    x = np.asarray(x, np.float64)
    w = np.asarray(w, np.float64)
    n, h, wd, c = x.shape
    k, cg, r, s = w.shape
    xp = np.pad(x, ((0, 0), (padding, padding), (padding, padding), (0, 0)))
    oh = (h + 2 * padding - r) // stride + 1
    ow = (wd + 2 * padding - s) // stride + 1
    y = np.zeros((n, oh, ow, k))
    kg = k // groups
    for g in range(groups):
        for i in range(r):
            for j in range(s):
                patch = xp[:, i:i + stride * (oh - 1) + 1:stride, j:j + stride * (ow - 1) + 1:stride,
                           g * cg:(g + 1) * cg]
                y[..., g * kg:(g + 1) * kg] += np.einsum("nhwc,kc->nhwk", patch, w[g * kg:(g + 1) * kg, :, i, j])
    if bias is not None:
        y += bias
    return y


def conv2d_grads(x, w, dy, stride=1, padding=0, groups=1):
    """Exact gradients of ``conv2d`` by the adjoint of the same slicing."""
    x = np.asarray(x, np.float64)
    w = np.asarray(w, np.float64)
    dy = np.asarray(dy, np.float64)
    n, h, wd, c = x.shape
    k, cg, r, s = w.shape
    oh, ow = dy.shape[1:3]
    dxp = np.zeros((n, h + 2 * padding, wd + 2 * padding, c))
    xp = np.pad(x, ((0, 0), (padding, padding), (padding, padding), (0, 0)))
    dw = np.zeros_like(w)
    kg = k // groups
    for g in range(groups):
        dyg = dy[..., g * kg:(g + 1) * kg]
        for i in range(r):
            for j in range(s):
                sl = (slice(None), slice(i, i + stride * (oh - 1) + 1, stride),
                      slice(j, j + stride * (ow - 1) + 1, stride), slice(g * cg, (g + 1) * cg))
                dw[g * kg:(g + 1) * kg, :, i, j] += np.einsum("nhwk,nhwc->kc", dyg, xp[sl])
                dxp[sl] += np.einsum("nhwk,kc->nhwc", dyg, w[g * kg:(g + 1) * kg, :, i, j])
    dx = dxp[:, padding:padding + h, padding:padding + wd]
    return dx, dw, dy.reshape(-1, k).sum(axis=0)


def batchnorm_train(x, gamma, beta, eps=1e-5, relu=False):
    x = np.asarray(x, np.float64).reshape(-1, x.shape[-1])
    mean = x.mean(axis=0)
    var = x.var(axis=0)
    y = (x - mean) / np.sqrt(var + eps) * gamma + beta
    return np.maximum(y, 0) if relu else y


def pool(x, k, stride, padding, op):
    x = np.asarray(x, np.float64)
    n, h, w, c = x.shape
    fill = -np.inf if op == "max" else 0.0
    xp = np.pad(x, ((0, 0), (padding, padding), (padding, padding), (0, 0)), constant_values=fill)
    oh = (h + 2 * padding - k) // stride + 1
    ow = (w + 2 * padding - k) // stride + 1
    windows = np.stack([xp[:, i:i + stride * (oh - 1) + 1:stride, j:j + stride * (ow - 1) + 1:stride]
                        for i in range(k) for j in range(k)])
    return windows.max(axis=0) if op == "max" else windows.mean(axis=0)


def kmeans_assign(x, centres):
    x = np.asarray(x, np.float64).reshape(len(x), -1)
    c = np.asarray(centres, np.float64).reshape(len(centres), -1)
    d = ((x[:, None, :] - c[None, :, :]) ** 2).sum(axis=2)
    return d.argmin(axis=1), d.min(axis=1)


def pow2_csr_matmul(indptr, indices, codes, e_min, dense):
    m = len(indptr) - 1
    out = np.zeros((m, dense.shape[1]))
    for i in range(m):
        for p in range(indptr[i], indptr[i + 1]):
            c = int(codes[p])
            out[i] += np.sign(c) * 2.0 ** (abs(c) - 1 + e_min) * dense[indices[p]].astype(np.float64)
    return out
