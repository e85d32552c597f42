"""2-D convolution on channels-last (NHWC) activations: one entry point, a method per layer.

``conv2d_method`` picks, per layer and machine: ``winograd`` (3x3 stride-1 layers, ``winograd.py``: 4x fewer
multiplies), ``tiled`` (the register-tiled direct convolution of ``direct.py``: strided, 1x1 and few-channel
layers), where the CPU has AVX2 or AVX-512; elsewhere, and in float64, im2col + BLAS below, or the direct and
depthwise loops. The same method runs a layer's backward pass. ``conv2d_forward(residual=, relu=)`` adds a
residual and applies ReLU as the output is stored (inference fusion, ``lean.nn.fusion``). Which method each
layer took and its time: ``lean bench train --net resnet20 --layers``; figures in ``benchmarks/README.md``
(issue 12).

The im2col method: im2col fused with a BLAS matmul, chunk by chunk.

Layout: activations are ``(n, h, w, c)``; weights keep the usual ``(k, c // groups, r, s)`` so that compression
methods and other tools read them as everyone writes them. The matmul side uses ``wmat`` of shape
``(r * s * c_per_group, k_per_group)`` whose row order matches a patch row ``(i, j, channel)``.

Why chunks: a whole im2col matrix of a ResNet-20 layer at batch 128 is 75 MB; building it then multiplying
streams it through memory twice. Building ``chunk_rows`` rows at a time keeps the patch block in cache while
BLAS consumes it (measured here: 16-channel layers rose from ~32 to ~45 GFLOP/s), and the backward pass
rebuilds patches instead of keeping them, which keeps training memory low.

Depthwise convolutions (one input channel per group) use direct loops instead: im2col would do a 1-column
matmul per channel. So do stride-1 convolutions of inputs with few channels (``DIRECT_MAX_CHANNELS``: LeNet's
grey-scale and ResNet's RGB first layers), whose patches are too short for BLAS to pay: ``_direct_forward``
computes whole padded-width output planes, one vectorized multiply-add per group of taps.
"""

import numpy as np

from . import direct, winograd
from ._checks import int_scalar, real_array, vector
from ._config import JIT, PARALLEL_JIT, U, float_dtype, njit, prange, run_split
from .elementwise import relu as relu_kernel

# ---------------------------------------------------------------------------------------------- kernels


@njit(**JIT)
def _im2col_rows(x, cols, row0, nrows, r, s, stride, pad, oh, ow, c0, cg):
    """Fill ``cols[:nrows]`` with the patches of output rows ``row0 .. row0+nrows`` (rows run over n, oy, ox).

    A patch row ``i`` is ``s`` neighbouring pixels of one image row: with all channels in one group that is one
    contiguous run of ``s * c`` values in NHWC, copied as one loop (the padding part of the run is zeroed).
    """
    _, h, w, c = x.shape
    xf = x.reshape(-1)
    cf = cols.reshape(-1)
    per_image = oh * ow
    patch_len = r * s * cg
    run = s * cg
    for t in range(nrows):
        row = row0 + t
        b = row // per_image
        rem = row - b * per_image
        oy = rem // ow
        ox = rem - oy * ow
        ix0 = ox * stride - pad
        j_lo = max(0, -ix0)
        j_hi = min(s, w - ix0)
        dst = U(t * patch_len)
        for i in range(r):
            iy = oy * stride - pad + i
            if iy < 0 or iy >= h or j_lo >= j_hi:
                for q in range(run):
                    cf[dst + U(q)] = 0.0
            elif cg == c:
                for q in range(j_lo * c):
                    cf[dst + U(q)] = 0.0
                src = U(((b * h + iy) * w + ix0 + j_lo) * c)
                inner = dst + U(j_lo * c)
                for q in range((j_hi - j_lo) * c):
                    cf[inner + U(q)] = xf[src + U(q)]
                for q in range(j_hi * c, run):
                    cf[dst + U(q)] = 0.0
            else:
                for j in range(s):
                    o = dst + U(j * cg)
                    if j_lo <= j < j_hi:
                        src = U(((b * h + iy) * w + ix0 + j) * c + c0)
                        for ch in range(cg):
                            cf[o + U(ch)] = xf[src + U(ch)]
                    else:
                        for ch in range(cg):
                            cf[o + U(ch)] = 0.0
            dst += U(run)


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
        ix0 = ox * stride - pad
        j_lo = max(0, -ix0)
        j_hi = min(s, w - ix0)
        for i in range(r):
            iy = oy * stride - pad + i
            if iy < 0 or iy >= h or j_lo >= j_hi:
                continue
            src = U(t * patch_len + i * s * cg)
            if cg == c:
                dst = U(((b * h + iy) * w + ix0 + j_lo) * c)
                inner = src + U(j_lo * c)
                for q in range((j_hi - j_lo) * c):
                    xf[dst + U(q)] += df[inner + U(q)]
            else:
                for j in range(j_lo, j_hi):
                    dst = U(((b * h + iy) * w + ix0 + j) * c + c0)
                    o = src + U(j * cg)
                    for ch in range(cg):
                        xf[dst + U(ch)] += df[o + U(ch)]


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


@njit(**JIT)
def _load_plane(x, b, xp, pad):
    """Copy image ``b`` of NHWC ``x`` into ``xp``, flat (c, h + 2 pad, w + 2 pad) planes with a zero border."""
    _, h, w, c = x.shape
    hp, wp = h + 2 * pad, w + 2 * pad
    xf = x.reshape(-1)
    xp[:] = 0.0
    base = U(b * h * w * c)
    for ci in range(c):
        for iy in range(h):
            src = base + U(iy * w * c + ci)
            dst = U((ci * hp + iy + pad) * wp + pad)
            for ix in range(w):
                xp[dst + U(ix)] = xf[src + U(ix * c)]


@njit(**JIT)
def _direct_forward(x, w, bias, y, pad, b0, b1):
    """Few-channel stride-1 convolution of images ``b0 .. b1``, written straight into NHWC ``y``.

    Each image is copied into zero-padded channel planes. An output plane is computed over the padded width
    (``oh * wp`` values, the last ``wp - ow`` of each row are discarded), so for a tap (ci, i, j) the whole
    plane is one long multiply-add against the input plane shifted by ``i * wp + j``: a loop LLVM vectorizes
    with no row ends in it. Beats im2col + BLAS when a patch is short and the matmul would be thin.
    """
    _, h, wd, c = x.shape
    k, _, r, s = w.shape
    _, oh, ow, _ = y.shape
    hp, wp = h + 2 * pad, wd + 2 * pad
    plane = hp * wp
    lq = oh * wp
    wf = w.reshape(-1)
    yf = y.reshape(-1)
    xp = np.empty(c * plane + s, dtype=x.dtype)  # + s: the discarded columns of the last row read past the plane
    acc = np.empty(k * lq, dtype=x.dtype)
    for b in range(b0, b1):
        _load_plane(x, b, xp, pad)
        for kk in range(k):
            ao = U(kk * lq)
            for q in range(lq):
                acc[ao + U(q)] = bias[kk]
            for ci in range(c):
                for i in range(r):
                    # taps of one kernel row three at a time: one load and store of acc per three FMAs
                    for j in range(0, s, 3):
                        wo = U(((kk * c + ci) * r + i) * s + j)
                        xo = U(ci * plane + i * wp + j)
                        w0 = wf[wo]
                        if s - j >= 3:
                            w1, w2 = wf[wo + U(1)], wf[wo + U(2)]
                            for q in range(lq):
                                xq = xo + U(q)
                                acc[ao + U(q)] += w0 * xp[xq] + w1 * xp[xq + U(1)] + w2 * xp[xq + U(2)]
                        elif s - j == 2:
                            w1 = wf[wo + U(1)]
                            for q in range(lq):
                                xq = xo + U(q)
                                acc[ao + U(q)] += w0 * xp[xq] + w1 * xp[xq + U(1)]
                        else:
                            for q in range(lq):
                                acc[ao + U(q)] += w0 * xp[xo + U(q)]
        for kk in range(k):
            for oy in range(oh):
                yo = U((b * oh + oy) * ow * k + kk)
                qo = U(kk * lq + oy * wp)
                for ox in range(ow):
                    yf[yo + U(ox * k)] = acc[qo + U(ox)]


@njit(**JIT)
def _direct_backward(x, w, dy, dx, dw, db, pad, need_dx, b0, b1):
    """Gradients of ``_direct_forward`` for images ``b0 .. b1``: sets ``dw`` and ``db`` to this range's sums.

    The output gradient of an image is laid out like the forward's padded-width planes, with zeros in the
    discarded columns, so a weight's gradient is one dot product over the plane and the input gradient one
    long multiply-add per tap, as in the forward.
    """
    _, h, wd, c = x.shape
    k, _, r, s = w.shape
    _, oh, ow, _ = dy.shape
    hp, wp = h + 2 * pad, wd + 2 * pad
    plane = hp * wp
    lq = oh * wp
    wf = w.reshape(-1)
    gf = dy.reshape(-1)
    dxf = dx.reshape(-1)
    dwf = dw.reshape(-1)
    dwf[:] = 0.0
    db[:] = 0.0
    xp = np.empty(c * plane + s, dtype=x.dtype)
    dxp = np.empty(c * plane + s, dtype=x.dtype)
    g = np.zeros(k * lq, dtype=x.dtype)
    for b in range(b0, b1):
        _load_plane(x, b, xp, pad)
        for kk in range(k):
            for oy in range(oh):
                src = U((b * oh + oy) * ow * k + kk)
                go = U(kk * lq + oy * wp)
                for ox in range(ow):
                    g[go + U(ox)] = gf[src + U(ox * k)]
        zero = x.dtype.type(0)
        for kk in range(k):
            go = U(kk * lq)
            total = zero
            for q in range(lq):
                total += g[go + U(q)]
            db[kk] += total
            for ci in range(c):
                for i in range(r):
                    # three taps' dot products at once: each gradient value loaded once for three FMAs
                    for j in range(0, s, 3):
                        wi = U(((kk * c + ci) * r + i) * s + j)
                        xo = U(ci * plane + i * wp + j)
                        t0, t1, t2 = zero, zero, zero
                        if s - j >= 3:
                            for q in range(lq):
                                gq, xq = g[go + U(q)], xo + U(q)
                                t0 += gq * xp[xq]
                                t1 += gq * xp[xq + U(1)]
                                t2 += gq * xp[xq + U(2)]
                            dwf[wi + U(2)] += t2
                        elif s - j == 2:
                            for q in range(lq):
                                gq, xq = g[go + U(q)], xo + U(q)
                                t0 += gq * xp[xq]
                                t1 += gq * xp[xq + U(1)]
                        else:
                            for q in range(lq):
                                t0 += g[go + U(q)] * xp[xo + U(q)]
                        dwf[wi] += t0
                        if s - j >= 2:
                            dwf[wi + U(1)] += t1
        if need_dx:
            dxp[:] = 0.0
            # per input tap, three output channels at once: one load and store of dxp per three FMAs
            for ci in range(c):
                for i in range(r):
                    for j in range(s):
                        xo = U(ci * plane + i * wp + j)
                        for kk in range(0, k, 3):
                            wo = U(((kk * c + ci) * r + i) * s + j)
                            go = U(kk * lq)
                            w0 = wf[wo]
                            if k - kk >= 3:
                                w1, w2 = wf[wo + U(c * r * s)], wf[wo + U(2 * c * r * s)]
                                for q in range(lq):
                                    gq = go + U(q)
                                    dxp[xo + U(q)] += w0 * g[gq] + w1 * g[gq + U(lq)] + w2 * g[gq + U(2 * lq)]
                            elif k - kk == 2:
                                w1 = wf[wo + U(c * r * s)]
                                for q in range(lq):
                                    gq = go + U(q)
                                    dxp[xo + U(q)] += w0 * g[gq] + w1 * g[gq + U(lq)]
                            else:
                                for q in range(lq):
                                    dxp[xo + U(q)] += w0 * g[go + U(q)]
        if need_dx:
            for ci in range(c):
                for iy in range(h):
                    dst = U((b * h + iy) * wd * c + ci)
                    src = U(ci * plane + (iy + pad) * wp + pad)
                    for ix in range(wd):
                        dxf[dst + U(ix * c)] = dxp[src + U(ix)]


# ---------------------------------------------------------------------------------------------- wrappers


def column_sums(a):
    """Sums of a 2-D array's columns as a BLAS vector-matrix product: NumPy's ``sum(axis=0)`` over a long array
    with few columns took 0.26 ms against 0.014 ms for this on a conv's (12800, 16) output gradient here."""
    return np.ones(a.shape[0], dtype=a.dtype) @ a


def conv_output_size(size: int, kernel: int, stride: int, padding: int) -> int:
    """Output length along one axis of a convolution or pooling window.

    Parameters
    ----------
    size : int
        Input length (>= 0).
    kernel : int
        Window length (>= 1).
    stride : int
        Step between windows (>= 1).
    padding : int
        Zeros added at each end (>= 0).

    Returns
    -------
    int
        ``(size + 2 * padding - kernel) // stride + 1``; ValueError if that is below 1.
    """
    size = int_scalar(size, "size", lo=0)
    kernel = int_scalar(kernel, "kernel", lo=1)
    stride = int_scalar(stride, "stride", lo=1)
    padding = int_scalar(padding, "padding", lo=0)
    out = (size + 2 * padding - kernel) // stride + 1
    if out < 1:
        raise ValueError(
            f"convolution output would be empty: input {size}, kernel {kernel}, stride {stride}, padding {padding}"
        )
    return out


def _check_conv_args(x, w, stride, padding, groups):
    """Shapes and hyper-parameters of a convolution; returns ``(oh, ow, stride, padding, groups)`` as ints."""
    if x.ndim != 4:
        raise ValueError(f"conv2d input must be (n, h, w, c); got shape {x.shape}")
    if w.ndim != 4:
        raise ValueError(f"conv2d weight must be (k, c // groups, r, s); got shape {w.shape}")
    stride = int_scalar(stride, "stride")
    padding = int_scalar(padding, "padding")
    groups = int_scalar(groups, "groups")
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
    return oh, ow, stride, padding, groups


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


# The direct kernel wins when the input has few channels (a short patch and a thin matmul). Measured here
# (2 threads, batch 128, forward / backward without input gradient, ms, direct vs im2col): LeNet-5's first layer
# (1 channel, 5x5) 1.3 / 1.0 vs 4.5 / 5.9; ResNet's RGB stem (3 channels, 3x3) 2.5 / 2.5 vs 6.3 / 8.1;
# 4 channels 3.0 / 3.0 vs 4.7 / 6.7; but LeNet-5's second layer (6 channels) 2.7 / 2.5 vs 2.1 / 1.5.
# Where the register-tiled kernels run they take such layers too (ResNet's stem, forward / weight gradient:
# 0.49 / 0.57 ms against 2.03 / 1.33 direct): their weight-gradient tiles span a tap row's s * c weights.
DIRECT_MAX_CHANNELS = 4

CONV_METHODS = ("auto", "im2col", "direct", "tiled", "winograd")


PRECISIONS = winograd.PRECISIONS  # of a convolution's products (``conv2d_forward(precision=...)``)
BF16_METHODS = ("winograd",)  # the methods that run bf16 products; the others stay float32


def _check_precision(precision):
    if precision not in PRECISIONS:
        raise ValueError(f"conv2d precision must be one of {', '.join(PRECISIONS)}; got {precision!r}")


def conv2d_method(c: int, k: int, groups: int = 1, stride: int = 1, dtype=np.float32,
                  kernel_size: int | None = None, padding: int = 1) -> str:
    """The method ``conv2d_forward(method="auto")`` takes for this layer here: ``depthwise`` (one channel per
    group), ``direct`` (stride-1 inputs of at most ``DIRECT_MAX_CHANNELS`` channels where ``tiled`` does not run),
    ``winograd`` (3x3 stride 1,
    ``lean.kernels.winograd``: float32, no groups, c and k multiples of 8, a CPU with AVX2 or AVX-512),
    ``tiled`` (register-tiled direct convolution, ``lean.kernels.direct``: float32, no groups, k a multiple of 8,
    the same CPUs), else ``im2col`` (im2col + BLAS, every machine). ``kernel_size``: r (= s) of the filters (None:
    not known, no Winograd); ``padding``: Winograd takes at most 2."""
    if _is_depthwise(c, k, groups):
        return "depthwise"
    if groups == 1 and stride == 1 and c <= DIRECT_MAX_CHANNELS:
        return "tiled" if direct.applies(np.dtype(dtype), k, groups) else "direct"
    if groups == 1 and padding <= 2 and winograd.applies(c, k, kernel_size, kernel_size, stride, np.dtype(dtype)):
        return "winograd"
    if direct.applies(np.dtype(dtype), k, groups):
        return "tiled"
    return "im2col"


def _pick_method(method, c, k, groups, stride, dtype, r, s, padding):
    if method not in CONV_METHODS:
        raise ValueError(f"unknown conv method {method!r}; choose one of: {', '.join(CONV_METHODS)}")
    if method == "auto":
        return conv2d_method(c, k, groups, stride, dtype, r if r == s else None, padding)
    if method == "direct" and (groups != 1 or stride != 1):
        raise ValueError("the direct conv method supports groups=1 and stride 1 only")
    if method == "tiled" and not direct.applies(np.dtype(dtype), k, groups, width=direct.SIMD_WIDTH or 8):
        raise ValueError("the tiled conv method needs float32, groups=1 and k a multiple of 8")
    if method == "winograd" and not (groups == 1 and padding <= 2 and winograd.applies(
            c, k, r, s, stride, np.dtype(dtype), width=direct.SIMD_WIDTH or 8)):
        raise ValueError("the winograd conv method needs 3x3 filters, stride 1, padding <= 2, float32, groups=1 "
                         "and c and k multiples of 8")
    return method


def conv2d_forward(x: np.ndarray, w: np.ndarray, bias: np.ndarray | None = None, stride: int = 1,
                   padding: int = 0, groups: int = 1, method: str = "auto", saved: dict | None = None,
                   residual: np.ndarray | None = None, relu: bool = False, precision: str = "float32") -> np.ndarray:
    """Convolution of NHWC ``x`` (n, h, w, c) with ``w`` (k, c // groups, r, s); returns (n, oh, ow, k).

    float32 in, float32 out; float64 throughout if any operand is float64 (for gradient checks).

    Parameters
    ----------
    x : np.ndarray
        Activations, (n, h, w, c), channels-last; any layout (non-contiguous input is copied).
    w : np.ndarray
        Weights, (k, c // groups, r, s).
    bias : np.ndarray or None
        (k,), added to every output pixel; None for none.
    stride, padding : int
        Step between windows (>= 1) and zeros added on each side (>= 0), the same along h and w.
    groups : int
        Channel groups; must divide c and k (``groups == c == k`` is a depthwise convolution).
    method : str
        ``"auto"`` (``conv2d_method`` says which), ``"im2col"``, ``"direct"`` (few-channel stride-1
        convolutions with groups=1 only), ``"tiled"`` (float32, groups=1, k a multiple of 8) or
        ``"winograd"`` (3x3, stride 1, padding <= 2, float32, groups=1, c and k multiples of 8).
    saved : dict or None
        If given, filled with what ``conv2d_backward(saved=...)`` can reuse (the tiled method's padded input)
        and ``method``, the method that ran.
    residual : np.ndarray or None
        (n, oh, ow, k), added to the output (a residual block's shortcut at inference).
    relu : bool
        Apply ReLU last (after the bias and the residual). The tiled and Winograd methods do both as they store
        the output (no extra pass); the others in a pass after.
    precision : str
        ``"float32"``, or ``"bf16"``: the Winograd method's products on bf16 operands with float32 sums
        (``lean.kernels.bf16``); the other methods run float32 either way (``BF16_METHODS``).

    Returns
    -------
    np.ndarray
        (n, oh, ow, k), ``oh = (h + 2 * padding - r) // stride + 1`` (``ow`` likewise with w and s).
    """
    dtype = float_dtype(x, w, bias, residual)
    x = real_array(x, "conv2d input x", dtype)
    w = real_array(w, "conv2d weight w", dtype)
    oh, ow, stride, padding, groups = _check_conv_args(x, w, stride, padding, groups)
    n, _, _, c = x.shape
    k, cg, r, s = w.shape
    if bias is not None:
        bias = vector(bias, "conv2d bias", k, dtype)
    if residual is not None:
        residual = real_array(residual, "conv2d residual", dtype)
        if residual.shape != (n, oh, ow, k):
            raise ValueError(f"conv2d residual must have shape {(n, oh, ow, k)}; got {residual.shape}")
    _check_precision(precision)
    method = _pick_method(method, c, k, groups, stride, dtype, r, s, padding)
    if saved is not None:
        saved["method"] = method
    if method == "winograd":
        return winograd.forward(x, w, bias, padding, residual=residual, relu=relu, precision=precision)
    if method == "tiled":
        xp = direct.pad_images(x, padding) if padding else x
        if saved is not None:
            saved["padded"] = xp
        return direct.forward_padded(xp, direct.pack_weights(w), bias, k, r, s, stride, oh, ow, residual=residual,
                                     relu=relu)
    y = _unfused_forward(x, w, bias, stride, padding, groups, method, oh, ow)
    if residual is not None:
        y += residual
    if relu:
        relu_kernel(y, in_place=True)  # NaN stays NaN
    return y


def _unfused_forward(x, w, bias, stride, padding, groups, method, oh, ow):
    """``conv2d_forward`` of the direct, depthwise and im2col methods (bias included, nothing after)."""
    dtype = x.dtype
    n, _, _, c = x.shape
    k, cg, r, s = w.shape
    if method == "direct":
        y = np.empty((n, oh, ow, k), dtype=dtype)
        bias_vec = np.zeros(k, dtype) if bias is None else bias
        run_split(lambda b0, b1: _direct_forward(x, w, bias_vec, y, padding, b0, b1), n)
        return y
    if method == "depthwise":
        y = np.empty((n, oh, ow, k), dtype=dtype)
        _depthwise_forward(x, np.ascontiguousarray(w[:, 0].transpose(1, 2, 0)), y, stride, padding)
    else:
        y = np.empty((n, oh, ow, k), dtype=dtype)
        y2 = y.reshape(n * oh * ow, k)
        kg = k // groups
        for g in range(groups):
            wmat = weight_to_matrix(w[g * kg:(g + 1) * kg])
            out = y2 if groups == 1 else np.empty((n * oh * ow, kg), dtype=dtype)
            bias_g = None if bias is None else bias[g * kg:(g + 1) * kg]
            _conv_matmul_forward(x, wmat, out, r, s, stride, padding, oh, ow, g * cg, cg, bias_g)
            if groups > 1:
                y2[:, g * kg:(g + 1) * kg] = out
        return y
    if bias is not None:
        y += bias
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


def _conv_matmul_forward(x, wmat, out, r, s, stride, padding, oh, ow, c0, cg, bias=None):
    """out (n*oh*ow, kg) = patches @ wmat (+ bias, added to each block while it is in cache).

    A 1x1 stride-1 conv reads its input rows as the patches.
    """
    def product(patches, block):
        np.matmul(patches, wmat, out=block)
        if bias is not None:
            block += bias

    if _is_pointwise(r, s, stride, padding) and cg == x.shape[3]:
        per_image = oh * ow
        x2 = x.reshape(-1, x.shape[3])
        run_split(lambda b0, b1: product(x2[b0 * per_image:b1 * per_image], out[b0 * per_image:b1 * per_image]),
                  x.shape[0])
        return
    patch_product(x, out, r, s, stride, padding, oh, ow, c0, cg, x.dtype, product)


def conv2d_backward(x: np.ndarray, w: np.ndarray, dy: np.ndarray, stride: int = 1, padding: int = 0,
                    groups: int = 1, need_dx: bool = True, need_db: bool = True, method: str = "auto",
                    saved: dict | None = None, precision: str = "float32"
                    ) -> tuple[np.ndarray | None, np.ndarray, np.ndarray | None]:
    """Gradients of ``conv2d_forward``: returns ``(dx, dw, db)`` with dx (n, h, w, c), dw like w, db (k,).

    ``dx`` is None unless ``need_dx``, ``db`` None unless ``need_db`` (a bias-free conv: summing a large
    output gradient for nothing cost ~1 ms a layer).

    Parameters
    ----------
    x : np.ndarray
        The forward input, (n, h, w, c).
    w : np.ndarray
        The forward weights, (k, c // groups, r, s).
    dy : np.ndarray
        Gradient of the output, (n, oh, ow, k): the forward output's shape.
    stride, padding, groups, method
        As given to ``conv2d_forward``.
    need_dx, need_db : bool
        Whether to compute the input and bias gradients.
    saved : dict or None
        What ``conv2d_forward(saved=...)`` kept for this call (the same ``x`` and ``w``), or None.
    precision : str
        As given to ``conv2d_forward``: ``"bf16"`` runs the Winograd method's two backward products on bf16
        operands.

    Returns
    -------
    dx : np.ndarray or None
        (n, h, w, c).
    dw : np.ndarray
        (k, c // groups, r, s).
    db : np.ndarray or None
        (k,).
    """
    dtype = float_dtype(x, w, dy)
    x = real_array(x, "conv2d input x", dtype)
    w = real_array(w, "conv2d weight w", dtype)
    oh, ow, stride, padding, groups = _check_conv_args(x, w, stride, padding, groups)
    n, h, wd, c = x.shape
    k, cg, r, s = w.shape
    dy = real_array(dy, "conv2d output gradient dy", dtype)
    if dy.shape != (n, oh, ow, k):
        raise ValueError(f"conv2d output gradient dy must have shape {(n, oh, ow, k)}; got {dy.shape}")
    need_dx, need_db = bool(need_dx), bool(need_db)
    _check_precision(precision)
    method = _pick_method(method, c, k, groups, stride, dtype, r, s, padding)
    if method == "winograd":
        return _winograd_backward(x, w, dy, padding, need_dx, need_db, precision)
    if method == "tiled":
        return _tiled_backward(x, w, dy, stride, padding, need_dx, need_db, saved)
    if method == "direct":
        dx = np.empty_like(x) if need_dx else np.empty((1, 1, 1, 1), dtype)

        def images(b0, b1):
            dw, db = np.empty_like(w), np.empty(k, dtype)
            _direct_backward(x, w, dy, dx, dw, db, padding, need_dx, b0, b1)
            return dw, db

        dw, db = (np.sum(part, axis=0) for part in zip(*run_split(images, n), strict=True))
        return (dx if need_dx else None), dw, (db if need_db else None)
    db = column_sums(dy.reshape(-1, k)) if need_db else None
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


def _tiled_backward(x, w, dy, stride, padding, need_dx, need_db, saved):
    """``conv2d_backward`` of the tiled method: the weight gradient and the input gradient on the register-tiled
    kernels (``lean.kernels.direct``; 3x3 stride-2 layers by phases, ``input_grad_strided``). Other strided
    layers' input gradient, and one of c not a multiple of 8, go through im2col (LeNet-5's second layer, c = 6:
    0.66 ms there, against 0.9 for the tiled one with zero filters up to 8 channels: 8-lane vectors do half an
    AVX-512 unit's work)."""
    n, h, wd, c = x.shape
    k, _, r, s = w.shape
    oh, ow = dy.shape[1:3]
    xp = (saved or {}).get("padded")
    if xp is None or xp.shape != (n, h + 2 * padding, wd + 2 * padding, c):
        xp = direct.pad_images(x, padding) if padding else x
    dw = direct.weight_grad_padded(xp, dy, r, s, stride)
    db = column_sums(dy.reshape(-1, k)) if need_db else None
    dx = None
    if need_dx and stride == 1 and r == s and padding <= r - 1 and c % 8 == 0:
        dyp = direct.pad_images(dy, r - 1 - padding) if r - 1 - padding else dy
        dx = direct.forward_padded(dyp, direct.flip_weights(w), None, c, r, s, 1, h, wd)
    elif need_dx and stride == 2 and r == s == 3 and padding == 1 and h % 2 == wd % 2 == 0 and c % 8 == 0:
        dx = direct.input_grad_strided(dy, w, h, wd)  # ResNet's downsampling layers
    elif need_dx:
        dx = np.zeros_like(x)
        _conv_matmul_backward(x, weight_to_matrix(w), dy.reshape(n * oh * ow, k), dx, r, s, stride, padding, oh,
                              ow, 0, c, need_dw=False)
    return dx, dw, db


def _winograd_backward(x, w, dy, padding, need_dx, need_db, precision):
    """``conv2d_backward`` of the Winograd method (3x3, stride 1): the weight gradient, and the input gradient as
    the Winograd convolution of the output gradient padded by 2 - padding with the filters flipped and their
    channel axes swapped."""
    k = w.shape[0]
    dw = winograd.weight_grad(x, dy, padding, precision=precision)
    db = column_sums(dy.reshape(-1, k)) if need_db else None
    dx = None
    if need_dx:
        flipped = np.ascontiguousarray(w[:, :, ::-1, ::-1].transpose(1, 0, 2, 3))
        dx = winograd.forward(dy, flipped, None, 2 - padding, precision=precision)
    return dx, dw, db


def _conv_matmul_backward(x, wmat, dy2, dx, r, s, stride, padding, oh, ow, c0, cg, need_dw=True):
    """Returns dwmat (patch_len, kg) (None without ``need_dw``) and scatter-adds the input gradient into ``dx``
    (if given).

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
            return x2[lo:hi].T @ dy2[lo:hi] if need_dw else None
        cols = np.empty((min(rows, hi - lo), patch_len), dtype=x.dtype)
        dcols = np.empty_like(cols) if dx is not None else None
        dwmat = np.zeros((patch_len, wmat.shape[1]), dtype=x.dtype)
        part = np.empty_like(dwmat)
        for row0 in range(lo, hi, rows):
            nrows = min(rows, hi - row0)
            buf = cols[:nrows]
            dyc = dy2[row0:row0 + nrows]
            if need_dw:
                _im2col_rows(x, buf, row0, nrows, r, s, stride, padding, oh, ow, c0, cg)
                np.matmul(buf.T, dyc, out=part)
                dwmat += part
            if dx is not None:
                dbuf = dcols[:nrows]
                np.matmul(dyc, wmat_t, out=dbuf)
                _col2im_rows(dbuf, dx, row0, nrows, r, s, stride, padding, oh, ow, c0, cg)
        return dwmat

    parts = run_split(images, x.shape[0])
    if not need_dw:
        return None
    return parts[0] if len(parts) == 1 else np.sum(parts, axis=0)
