"""2-D convolution on channels-last (NHWC) activations: im2col fused with a BLAS matmul, chunk by chunk.

Layout: activations are ``(n, h, w, c)``; weights keep the usual ``(k, c // groups, r, s)`` so that compression
methods and other tools read them as everyone writes them. The matmul side uses ``wmat`` of shape
``(r * s * c_per_group, k_per_group)`` whose row order matches a patch row ``(i, j, channel)``.

Why chunks: a whole im2col matrix of a ResNet-20 layer at batch 128 is 75 MB; building it then multiplying
streams it through memory twice. Building ``chunk_rows`` rows at a time keeps the patch block in cache while
BLAS consumes it (measured here: 16-channel layers rose from ~32 to ~45 GFLOP/s), and the backward pass
rebuilds patches instead of keeping them, which keeps training memory low.

Depthwise convolutions (one input channel per group) use direct loops instead: im2col would do a 1-column
matmul per channel.
"""

import numpy as np

from ._config import JIT, PARALLEL_JIT, U, float_dtype, njit, prange, run_split

# ---------------------------------------------------------------------------------------------- kernels


@njit(**JIT)
def _im2col_rows(x, cols, row0, nrows, r, s, stride, pad, oh, ow, c0, cg):
    """Fill ``cols[:nrows]`` with the patches of output rows ``row0 .. row0+nrows`` (rows run over n, oy, ox)."""
    _, h, w, c = x.shape
    xf = x.reshape(-1)
    cf = cols.reshape(-1)
    per_image = oh * ow
    patch_len = r * s * cg
    for t in range(nrows):
        row = row0 + t
        b = row // per_image
        rem = row - b * per_image
        oy = rem // ow
        ox = rem - oy * ow
        dst = U(t * patch_len)
        for i in range(r):
            iy = oy * stride - pad + i
            for j in range(s):
                ix = ox * stride - pad + j
                if iy >= 0 and iy < h and ix >= 0 and ix < w:
                    src = U(((b * h + iy) * w + ix) * c + c0)
                    for ch in range(cg):
                        cf[dst + U(ch)] = xf[src + U(ch)]
                else:
                    for ch in range(cg):
                        cf[dst + U(ch)] = 0.0
                dst += U(cg)


@njit(**JIT)
def _col2im_rows(dcols, dx, row0, nrows, r, s, stride, pad, oh, ow, c0, cg):
    """Scatter-add patch gradients ``dcols[:nrows]`` back into ``dx`` (the adjoint of ``_im2col_rows``)."""
    _, h, w, c = dx.shape
    df = dcols.reshape(-1)
    xf = dx.reshape(-1)
    per_image = oh * ow
    patch_len = r * s * cg
    for t in range(nrows):
        row = row0 + t
        b = row // per_image
        rem = row - b * per_image
        oy = rem // ow
        ox = rem - oy * ow
        src = U(t * patch_len)
        for i in range(r):
            iy = oy * stride - pad + i
            for j in range(s):
                ix = ox * stride - pad + j
                if iy >= 0 and iy < h and ix >= 0 and ix < w:
                    dst = U(((b * h + iy) * w + ix) * c + c0)
                    for ch in range(cg):
                        xf[dst + U(ch)] += df[src + U(ch)]
                src += U(cg)


@njit(**PARALLEL_JIT)
def _depthwise_forward(x, wt, y, stride, pad):
    """y[b, oy, ox, ch] = sum_ij x[b, oy*stride-pad+i, ox*stride-pad+j, ch] * wt[i, j, ch]."""
    n, h, w, c = x.shape
    _, oh, ow, _ = y.shape
    r, s, _ = wt.shape
    for bo in prange(n * oh):
        b = bo // oh
        oy = bo - b * oh
        for ox in range(ow):
            for ch in range(c):
                y[b, oy, ox, ch] = 0.0
            for i in range(r):
                iy = oy * stride - pad + i
                if iy < 0 or iy >= h:
                    continue
                for j in range(s):
                    ix = ox * stride - pad + j
                    if ix < 0 or ix >= w:
                        continue
                    for ch in range(c):
                        y[b, oy, ox, ch] += x[b, iy, ix, ch] * wt[i, j, ch]


@njit(**PARALLEL_JIT)
def _depthwise_backward(x, wt, dy, dx, dwt_per_image, stride, pad, need_dx):
    """Input gradient (scatter, one image per thread) and per-image weight gradients (summed by the caller)."""
    n, h, w, c = x.shape
    _, oh, ow, _ = dy.shape
    r, s, _ = wt.shape
    for b in prange(n):
        if need_dx:
            for iy in range(h):
                for ix in range(w):
                    for ch in range(c):
                        dx[b, iy, ix, ch] = 0.0
        for i in range(r):
            for j in range(s):
                for ch in range(c):
                    dwt_per_image[b, i, j, ch] = 0.0
        for oy in range(oh):
            for ox in range(ow):
                for i in range(r):
                    iy = oy * stride - pad + i
                    if iy < 0 or iy >= h:
                        continue
                    for j in range(s):
                        ix = ox * stride - pad + j
                        if ix < 0 or ix >= w:
                            continue
                        for ch in range(c):
                            g = dy[b, oy, ox, ch]
                            dwt_per_image[b, i, j, ch] += g * x[b, iy, ix, ch]
                            if need_dx:
                                dx[b, iy, ix, ch] += g * wt[i, j, ch]


@njit(**PARALLEL_JIT)
def _direct_forward(xp, w, y_t, stride):
    """Few-channel convolution: y_t[b, kk, oy, ox] = sum over (ci, i, j) of w[kk, ci, i, j] * xp[b, ci, ...].

    ``xp`` is the zero-padded input in (n, c, h, w) order, so the innermost loop runs along a contiguous image
    row and vectorizes; this beats im2col + BLAS when a patch is short (few input channels) and the matmul
    would be thin. Flat unsigned offsets keep Numba's wraparound tests out of the inner loop.
    """
    n, c, hp, wp = xp.shape
    k, _, r, s = w.shape
    _, _, oh, ow = y_t.shape
    xf = xp.reshape(-1)
    yf = y_t.reshape(-1)
    wf = w.reshape(-1)
    for bk in prange(n * k):
        b = bk // k
        kk = bk - b * k
        for oy in range(oh):
            yo = U(((b * k + kk) * oh + oy) * ow)
            for ox in range(ow):
                yf[yo + U(ox)] = 0.0
            for ci in range(c):
                for i in range(r):
                    xo = U(((b * c + ci) * hp + oy * stride + i) * wp)
                    for j in range(s):
                        wv = wf[U(((kk * c + ci) * r + i) * s + j)]
                        if stride == 1:
                            for ox in range(ow):
                                yf[yo + U(ox)] += wv * xf[xo + U(ox + j)]
                        else:
                            for ox in range(ow):
                                yf[yo + U(ox)] += wv * xf[xo + U(ox * stride + j)]


@njit(**PARALLEL_JIT)
def _direct_backward(xp, w, dy_t, dxp, dw_per_image, stride, need_dx):
    """Gradients of ``_direct_forward``, one image per parallel iteration (no two threads write one place).

    The weight gradient sums products along whole output rows into a row-long accumulator and reduces it
    once per weight, so the inner loop is a plain vectorizable multiply-add rather than a dot product.
    """
    n, c, hp, wp = xp.shape
    k, _, r, s = w.shape
    _, _, oh, ow = dy_t.shape
    xf = xp.reshape(-1)
    gf = dy_t.reshape(-1)
    wf = w.reshape(-1)
    dxf = dxp.reshape(-1)
    dwf = dw_per_image.reshape(-1)
    per_image_x = c * hp * wp
    per_image_w = k * c * r * s
    for b in prange(n):
        acc = np.empty(ow, dtype=xp.dtype)
        if need_dx:
            for q in range(per_image_x):
                dxf[U(b * per_image_x + q)] = 0.0
        for kk in range(k):
            for ci in range(c):
                for i in range(r):
                    for j in range(s):
                        wi = U(((kk * c + ci) * r + i) * s + j)
                        acc[:] = 0.0
                        for oy in range(oh):
                            go = U(((b * k + kk) * oh + oy) * ow)
                            xo = U(((b * c + ci) * hp + oy * stride + i) * wp + j)
                            if stride == 1:
                                for ox in range(ow):
                                    acc[ox] += gf[go + U(ox)] * xf[xo + U(ox)]
                            else:
                                for ox in range(ow):
                                    acc[ox] += gf[go + U(ox)] * xf[xo + U(ox * stride)]
                            if need_dx:
                                wv = wf[wi]
                                for ox in range(ow):
                                    dxf[xo + U(ox * stride)] += wv * gf[go + U(ox)]
                        dwf[U(b * per_image_w) + wi] = acc.sum()


# ---------------------------------------------------------------------------------------------- wrappers


def conv_output_size(size, kernel, stride, padding):
    out = (size + 2 * padding - kernel) // stride + 1
    if out < 1:
        raise ValueError(
            f"convolution output would be empty: input {size}, kernel {kernel}, stride {stride}, padding {padding}"
        )
    return out


def _check_conv_args(x, w, stride, padding, groups):
    if x.ndim != 4:
        raise ValueError(f"conv2d input must be (n, h, w, c); got shape {x.shape}")
    if w.ndim != 4:
        raise ValueError(f"conv2d weight must be (k, c // groups, r, s); got shape {w.shape}")
    c = x.shape[3]
    k, cg, r, s = w.shape
    if groups < 1 or c % groups or k % groups:
        raise ValueError(f"groups={groups} must divide input channels {c} and output channels {k}")
    if cg != c // groups:
        raise ValueError(f"weight expects {cg * groups} input channels (groups={groups}); input has {c}")
    if stride < 1 or padding < 0:
        raise ValueError(f"stride must be >= 1 and padding >= 0; got stride={stride}, padding={padding}")
    oh = conv_output_size(x.shape[1], r, stride, padding)
    ow = conv_output_size(x.shape[2], s, stride, padding)
    return oh, ow


def weight_to_matrix(w):
    """(k, cg, r, s) -> (r * s * cg, k): the matmul operand whose rows follow a patch row (i, j, channel)."""
    k, cg, r, s = w.shape
    return np.ascontiguousarray(w.transpose(2, 3, 1, 0).reshape(r * s * cg, k))


def matrix_to_weight(wmat, shape):
    k, cg, r, s = shape
    return wmat.reshape(r, s, cg, k).transpose(3, 2, 0, 1)


def _chunk_rows(patch_len):
    """Rows of patches built per BLAS call: ~512 kB of float32 patches (best of 256 kB..4 MB measured here)."""
    return int(min(16384, max(64, (1 << 17) // max(patch_len, 1))))


def _is_pointwise(r, s, stride, padding):
    return r == 1 and s == 1 and stride == 1 and padding == 0


def _is_depthwise(c, k, groups):
    return groups > 1 and groups == c and groups == k


# Direct loops win when the input has very few channels (a short patch row and a thin matmul). Measured here
# (1 thread, batch 128): 3x faster than im2col at 1 channel (LeNet-5's first layer, 5x5), but 1.3x slower at 3
# channels (ResNet's RGB stem, 3x3) and 3-4x slower at 6 (LeNet-5's second layer).
DIRECT_MAX_CHANNELS = 2

CONV_METHODS = ("auto", "im2col", "direct")


def _pick_method(method, c, k, groups):
    if method not in CONV_METHODS:
        raise ValueError(f"unknown conv method {method!r}; choose one of: {', '.join(CONV_METHODS)}")
    if method == "auto":
        if _is_depthwise(c, k, groups):
            return "depthwise"
        return "direct" if (groups == 1 and c <= DIRECT_MAX_CHANNELS) else "im2col"
    if method == "direct" and groups != 1:
        raise ValueError("the direct conv method supports groups=1 only")
    return method


def _padded_channels_first(x, padding):
    n, h, w, c = x.shape
    xp = np.zeros((n, c, h + 2 * padding, w + 2 * padding), dtype=x.dtype)
    xp[:, :, padding:padding + h, padding:padding + w] = x.transpose(0, 3, 1, 2)
    return xp


def conv2d_forward(x, w, bias=None, stride=1, padding=0, groups=1, method="auto"):
    """Convolution of NHWC ``x`` (n, h, w, c) with ``w`` (k, c // groups, r, s); returns (n, oh, ow, k).

    float32 in, float32 out; float64 throughout if any operand is float64 (for gradient checks).
    """
    dtype = float_dtype(x, w)
    x = np.ascontiguousarray(x, dtype=dtype)
    w = np.asarray(w, dtype=dtype)
    oh, ow = _check_conv_args(x, w, stride, padding, groups)
    n, _, _, c = x.shape
    k, cg, r, s = w.shape
    method = _pick_method(method, c, k, groups)
    if method == "direct":
        y_t = np.empty((n, k, oh, ow), dtype=dtype)
        _direct_forward(_padded_channels_first(x, padding), np.ascontiguousarray(w), y_t, stride)
        y = np.ascontiguousarray(y_t.transpose(0, 2, 3, 1))
    elif method == "depthwise":
        y = np.empty((n, oh, ow, k), dtype=dtype)
        _depthwise_forward(x, np.ascontiguousarray(w[:, 0].transpose(1, 2, 0)), y, stride, padding)
    else:
        y = np.empty((n, oh, ow, k), dtype=dtype)
        y2 = y.reshape(n * oh * ow, k)
        kg = k // groups
        for g in range(groups):
            wmat = weight_to_matrix(w[g * kg:(g + 1) * kg])
            out = y2 if groups == 1 else np.empty((n * oh * ow, kg), dtype=dtype)
            _conv_matmul_forward(x, wmat, out, r, s, stride, padding, oh, ow, g * cg, cg)
            if groups > 1:
                y2[:, g * kg:(g + 1) * kg] = out
    if bias is not None:
        y += np.asarray(bias, dtype=dtype)
    return y


def patch_product(x, out, r, s, stride, padding, oh, ow, c0, cg, cols_dtype, product, chunk_scale=1):
    """For every output row, build its patch and let ``product(patches, out_block)`` fill ``out`` (m, kg).

    The shared driver of every im2col convolution (float, int8, exact-float): patches are built
    ``_chunk_rows`` (times ``chunk_scale``) at a time into a buffer of ``cols_dtype`` that stays in cache, and
    each worker thread takes a contiguous range of images.
    """
    per_image = oh * ow
    patch_len = r * s * cg
    rows = min(1 << 16, _chunk_rows(patch_len) * chunk_scale)

    def images(b0, b1):
        cols = np.empty((min(rows, (b1 - b0) * per_image), patch_len), dtype=cols_dtype)
        for row0 in range(b0 * per_image, b1 * per_image, rows):
            nrows = min(rows, b1 * per_image - row0)
            buf = cols[:nrows]
            _im2col_rows(x, buf, row0, nrows, r, s, stride, padding, oh, ow, c0, cg)
            product(buf, out[row0:row0 + nrows])

    run_split(images, x.shape[0])


def _conv_matmul_forward(x, wmat, out, r, s, stride, padding, oh, ow, c0, cg):
    """out (n*oh*ow, kg) = patches @ wmat (a 1x1 stride-1 conv reads its input rows as the patches)."""
    if _is_pointwise(r, s, stride, padding) and cg == x.shape[3]:
        per_image = oh * ow
        x2 = x.reshape(-1, x.shape[3])
        run_split(lambda b0, b1: np.matmul(x2[b0 * per_image:b1 * per_image], wmat,
                                           out=out[b0 * per_image:b1 * per_image]), x.shape[0])
        return
    patch_product(x, out, r, s, stride, padding, oh, ow, c0, cg, x.dtype,
                  lambda buf, block: np.matmul(buf, wmat, out=block))


def conv2d_backward(x, w, dy, stride=1, padding=0, groups=1, need_dx=True, need_db=True, method="auto"):
    """Gradients of ``conv2d_forward``: returns ``(dx, dw, db)`` with dx (n, h, w, c), dw like w, db (k,).

    ``dx`` is None unless ``need_dx``, ``db`` None unless ``need_db`` (a bias-free conv: summing a large
    output gradient for nothing cost ~1 ms a layer).
    """
    dtype = float_dtype(x, w, dy)
    x = np.ascontiguousarray(x, dtype=dtype)
    w = np.asarray(w, dtype=dtype)
    oh, ow = _check_conv_args(x, w, stride, padding, groups)
    n, h, wd, c = x.shape
    k, cg, r, s = w.shape
    dy = np.ascontiguousarray(dy, dtype=dtype)
    if dy.shape != (n, oh, ow, k):
        raise ValueError(f"conv2d output gradient must have shape {(n, oh, ow, k)}; got {dy.shape}")
    method = _pick_method(method, c, k, groups)
    if method == "direct":
        xp = _padded_channels_first(x, padding)
        dxp = np.empty_like(xp) if need_dx else np.empty((1, 1, 1, 1), dtype)
        dw_per_image = np.empty((n, k, cg, r, s), dtype=dtype)
        dy_t = np.ascontiguousarray(dy.transpose(0, 3, 1, 2))
        # summed over contiguous (oh, ow) planes: far faster than over a 6-wide channel axis
        db = dy_t.sum(axis=(0, 2, 3)) if need_db else None
        _direct_backward(xp, np.ascontiguousarray(w), dy_t, dxp, dw_per_image, stride, need_dx)
        dx = None
        if need_dx:
            dx = np.ascontiguousarray(dxp[:, :, padding:padding + h, padding:padding + wd].transpose(0, 2, 3, 1))
        return dx, dw_per_image.sum(axis=0), db
    db = dy.reshape(-1, k).sum(axis=0) if need_db else None
    if method == "depthwise":
        dx = np.empty_like(x) if need_dx else np.empty((1, 1, 1, 1), dtype)
        wt = np.ascontiguousarray(w[:, 0].transpose(1, 2, 0))
        dwt = np.empty((n, r, s, c), dtype=dtype)
        _depthwise_backward(x, wt, dy, dx, dwt, stride, padding, need_dx)
        dw = dwt.sum(axis=0).transpose(2, 0, 1)[:, None].copy()
        return (dx if need_dx else None), dw, db
    dx = np.zeros_like(x) if need_dx else None
    dw = np.empty_like(w)
    dy2 = dy.reshape(n * oh * ow, k)
    kg = k // groups
    for g in range(groups):
        wg = w[g * kg:(g + 1) * kg]
        dyg = dy2 if groups == 1 else np.ascontiguousarray(dy2[:, g * kg:(g + 1) * kg])
        dwmat = _conv_matmul_backward(x, weight_to_matrix(wg), dyg, dx, r, s, stride, padding, oh, ow, g * cg, cg)
        dw[g * kg:(g + 1) * kg] = matrix_to_weight(dwmat, wg.shape)
    return dx, dw, db


def _conv_matmul_backward(x, wmat, dy2, dx, r, s, stride, padding, oh, ow, c0, cg):
    """Returns dwmat (patch_len, kg) and scatter-adds the input gradient into ``dx`` (if given).

    Work is split by images, so no two threads ever add into the same part of ``dx``; each thread returns its own
    partial weight gradient, summed afterwards.
    """
    per_image = oh * ow
    patch_len = r * s * cg
    pointwise = _is_pointwise(r, s, stride, padding) and cg == x.shape[3]
    x2 = x.reshape(-1, x.shape[3])
    rows = _chunk_rows(patch_len)
    wmat_t = np.ascontiguousarray(wmat.T)

    def images(b0, b1):
        lo, hi = b0 * per_image, b1 * per_image
        if pointwise:
            if dx is not None:
                np.matmul(dy2[lo:hi], wmat_t, out=dx.reshape(-1, cg)[lo:hi])
            return x2[lo:hi].T @ dy2[lo:hi]
        cols = np.empty((min(rows, hi - lo), patch_len), dtype=x.dtype)
        dcols = np.empty_like(cols) if dx is not None else None
        dwmat = np.zeros((patch_len, wmat.shape[1]), dtype=x.dtype)
        part = np.empty_like(dwmat)
        for row0 in range(lo, hi, rows):
            nrows = min(rows, hi - row0)
            buf = cols[:nrows]
            dyc = dy2[row0:row0 + nrows]
            _im2col_rows(x, buf, row0, nrows, r, s, stride, padding, oh, ow, c0, cg)
            np.matmul(buf.T, dyc, out=part)
            dwmat += part
            if dx is not None:
                dbuf = dcols[:nrows]
                np.matmul(dyc, wmat_t, out=dbuf)
                _col2im_rows(dbuf, dx, row0, nrows, r, s, stride, padding, oh, ow, c0, cg)
        return dwmat

    parts = run_split(images, x.shape[0])
    return parts[0] if len(parts) == 1 else np.sum(parts, axis=0)
