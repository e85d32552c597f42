"""The register-tiled kernels (lean.kernels.simd, direct, batch norm's tiles) against the NumPy references, on the
vector width this machine runs and on the others forced (AVX-512's 16 lanes, AVX2's 8, none: the fallback)."""

import numpy as np
import pytest
import reference

from lean import kernels
from lean.kernels import batchnorm, conv, direct, simd, winograd

WIDTHS = [16, 8, 0]  # 0: no vectors, the portable paths (an ARM board, an old x86)


@pytest.fixture(params=WIDTHS, ids=lambda w: f"width{w}")
def width(request, monkeypatch):
    monkeypatch.setattr(direct, "SIMD_WIDTH", request.param)
    monkeypatch.setattr(batchnorm, "SIMD_WIDTH", request.param)
    return request.param


def _rand(rng, *shape):
    return rng.standard_normal(shape).astype(np.float32)


TILED_CONV_CASES = [
    # n, h, w, c, k, r, stride, padding: vector-wide k, rows that tiles do not fill, strides, odd c
    (2, 9, 11, 16, 16, 3, 1, 1),
    (1, 5, 7, 8, 8, 3, 1, 1),
    (3, 8, 8, 32, 32, 3, 1, 1),
    (2, 10, 6, 16, 32, 3, 2, 1),
    (1, 7, 9, 32, 64, 3, 2, 1),
    (2, 6, 13, 5, 24, 3, 1, 1),      # odd c, k = 3 vectors of 8
    (1, 12, 12, 6, 16, 5, 1, 0),     # LeNet-5's second layer
    (2, 4, 4, 64, 48, 1, 1, 0),      # pointwise
    (1, 9, 9, 24, 40, 5, 1, 2),
    (1, 3, 17, 3, 16, 3, 1, 1),      # RGB input
    (1, 1, 1, 8, 8, 1, 1, 0),
]


@pytest.mark.parametrize("n,h,w,c,k,r,stride,padding", TILED_CONV_CASES)
def test_tiled_conv_matches_the_reference_at_every_width(width, n, h, w, c, k, r, stride, padding):
    rng = np.random.default_rng(n * 1000 + h * 100 + c + k)
    x, wt, b = _rand(rng, n, h, w, c), _rand(rng, k, c, r, r), _rand(rng, k)
    method = conv.conv2d_method(c, k, 1, stride)
    if width == 0:
        assert method in ("im2col", "direct")
    elif c > conv.DIRECT_MAX_CHANNELS or stride > 1:
        assert method == "tiled"
    saved = {}
    y = kernels.conv2d_forward(x, wt, b, stride, padding, method="tiled", saved=saved)
    np.testing.assert_allclose(y, reference.conv2d(x, wt, b, stride, padding), rtol=1e-4, atol=2e-4)
    dy = _rand(rng, *y.shape)
    dx, dw, db = kernels.conv2d_backward(x, wt, dy, stride, padding, method="tiled", saved=saved)
    rdx, rdw, rdb = reference.conv2d_grads(x, wt, dy, stride, padding)
    np.testing.assert_allclose(dx, rdx, rtol=1e-4, atol=2e-4)
    np.testing.assert_allclose(dw, rdw, rtol=1e-4, atol=2e-3)
    np.testing.assert_allclose(db, rdb, rtol=1e-4, atol=1e-4)
    _, dw2, _ = kernels.conv2d_backward(x, wt, dy, stride, padding, method="tiled")  # without the saved padding
    np.testing.assert_array_equal(dw2, dw)


WINOGRAD_CASES = [
    # n, h, w, c, k, padding: outputs that are and are not multiples of the tile, c != k, paddings 0..2
    (2, 8, 8, 16, 16, 1),
    (3, 7, 9, 8, 24, 1),
    (1, 9, 5, 16, 8, 0),
    (2, 6, 6, 8, 16, 2),
    (1, 3, 3, 8, 8, 1),
    (2, 16, 16, 32, 32, 1),
    (1, 5, 13, 64, 16, 1),
]


@pytest.mark.parametrize("m", [2, 4])
@pytest.mark.parametrize("n,h,w,c,k,padding", WINOGRAD_CASES)
def test_winograd_matches_the_reference_at_every_vector_width(width, m, n, h, w, c, k, padding):
    rng = np.random.default_rng(n * 100 + h * 10 + c + k + m)
    x, wt, b = _rand(rng, n, h, w, c), _rand(rng, k, c, 3, 3), _rand(rng, k)
    lanes = width or 8  # the kernels run any width; 0 means conv2d does not choose them
    ref = reference.conv2d(x, wt, b, 1, padding)
    scale = np.abs(ref).max()
    # float32 rounding of the transforms: F(2x2) ~1e-6 of the largest output, F(4x4) ~1e-5 (entries to 8, 1/24)
    tolerance = {2: 1e-5, 4: 1e-4}[m]
    y = winograd.forward(x, wt, b, padding, m=m, width=lanes)
    assert np.abs(y - ref).max() <= tolerance * scale
    dy = _rand(rng, *y.shape)
    _, rdw, _ = reference.conv2d_grads(x, wt, dy, 1, padding)
    dw = winograd.weight_grad(x, dy, padding, m=m, width=lanes)
    assert np.abs(dw - rdw).max() <= tolerance * np.abs(rdw).max()
    for rows in (1, 3):  # blocks of other sizes, spanning images, give the same sums up to rounding
        y2 = winograd.forward(x, wt, b, padding, m=m, width=lanes, rows=rows)
        np.testing.assert_allclose(y2, y, rtol=1e-5, atol=1e-5 * scale)


@pytest.mark.parametrize("n,h,w,c,k,padding", WINOGRAD_CASES)
def test_conv2d_takes_winograd_for_3x3_stride_1_layers_and_its_gradients_match(width, n, h, w, c, k, padding):
    rng = np.random.default_rng(n + h + w + c + k)
    x, wt, b = _rand(rng, n, h, w, c), _rand(rng, k, c, 3, 3), _rand(rng, k)
    saved = {}
    y = kernels.conv2d_forward(x, wt, b, 1, padding, saved=saved)
    assert saved["method"] == ("winograd" if width else "im2col")
    scale = np.abs(reference.conv2d(x, wt, b, 1, padding)).max()
    np.testing.assert_allclose(y, reference.conv2d(x, wt, b, 1, padding), rtol=1e-4, atol=1e-4 * scale)
    dy = _rand(rng, *y.shape)
    dx, dw, db = kernels.conv2d_backward(x, wt, dy, 1, padding, saved=saved)
    rdx, rdw, rdb = reference.conv2d_grads(x, wt, dy, 1, padding)
    np.testing.assert_allclose(dx, rdx, rtol=1e-4, atol=1e-4 * np.abs(rdx).max())
    np.testing.assert_allclose(dw, rdw, rtol=1e-4, atol=1e-4 * np.abs(rdw).max())
    np.testing.assert_allclose(db, rdb, rtol=1e-4, atol=1e-4)
    _, dw2, _ = kernels.conv2d_backward(x, wt, dy, 1, padding)  # without the saved padding: the same sums
    np.testing.assert_array_equal(dw2, dw)


def test_winograd_weight_transforms_match_their_definition():
    rng = np.random.default_rng(3)
    wt = _rand(rng, 24, 16, 3, 3)
    for m, (_, g, _) in winograd.TRANSFORMS.items():
        a = m + 2
        u = winograd.transform_weights(wt, m)
        expected = np.einsum("ai,kcij,bj->abck", g, wt.astype(np.float64), g).reshape(a * a, 16, 24)
        np.testing.assert_allclose(u, expected, rtol=1e-5, atol=1e-6)
        du = _rand(rng, a * a, 16, 24)
        expected = np.einsum("ai,abck,bj->kcij", g, du.reshape(a, a, 16, 24).astype(np.float64), g)
        np.testing.assert_allclose(winograd.weight_grad_from_transformed(du, 16, 24, m), expected, rtol=1e-5,
                                   atol=1e-5)


def test_winograd_method_refuses_what_it_cannot_run():
    x = np.zeros((1, 6, 6, 8), np.float32)
    for w, kwargs in [(np.zeros((8, 8, 5, 5), np.float32), {}), (np.zeros((8, 8, 3, 3), np.float32), {"stride": 2}),
                      (np.zeros((6, 8, 3, 3), np.float32), {}), (np.zeros((8, 8, 3, 3), np.float32), {"padding": 3})]:
        with pytest.raises(ValueError, match="winograd conv method needs"):
            kernels.conv2d_forward(x, w, method="winograd", **kwargs)
    assert conv.conv2d_method(8, 8, kernel_size=3, dtype=np.float64) == "im2col"
    assert conv.conv2d_method(8, 8, kernel_size=3, padding=3) != "winograd"
    saved = {}
    kernels.conv2d_forward(x, np.zeros((8, 8, 3, 3), np.float32), padding=3, saved=saved)  # auto: tiled instead
    assert saved["method"] == ("tiled" if direct.SIMD_WIDTH else "im2col")


@pytest.mark.parametrize("n,h,w,c,k", [(2, 8, 8, 16, 32), (1, 6, 10, 8, 16), (3, 4, 4, 32, 8), (1, 2, 2, 8, 8)])
def test_strided_input_gradient_by_phases_matches_the_reference(width, n, h, w, c, k):
    rng = np.random.default_rng(n + h + w + c + k)
    x, wt = _rand(rng, n, h, w, c), _rand(rng, k, c, 3, 3)
    dy = _rand(rng, n, h // 2, w // 2, k)
    rdx, rdw, _ = reference.conv2d_grads(x, wt, dy, 2, 1)
    np.testing.assert_allclose(direct.input_grad_strided(dy, wt, h, w, width=width or 8), rdx, rtol=1e-4,
                               atol=1e-4 * np.abs(rdx).max())
    dx, dw, _ = kernels.conv2d_backward(x, wt, dy, 2, 1, method="tiled")
    np.testing.assert_allclose(dx, rdx, rtol=1e-4, atol=1e-4 * np.abs(rdx).max())


def test_tiled_conv_is_deterministic_for_a_thread_count():
    rng = np.random.default_rng(5)
    x, wt = _rand(rng, 6, 12, 12, 16), _rand(rng, 32, 16, 3, 3)
    dy = _rand(rng, 6, 12, 12, 32)
    first = kernels.conv2d_backward(x, wt, dy, 1, 1, method="tiled")
    again = kernels.conv2d_backward(x, wt, dy, 1, 1, method="tiled")
    for a, b in zip(first, again, strict=True):
        np.testing.assert_array_equal(a, b)


def test_tiled_method_refuses_what_it_cannot_run():
    x = np.zeros((1, 6, 6, 8), np.float32)
    with pytest.raises(ValueError, match="tiled conv method needs"):
        kernels.conv2d_forward(x, np.zeros((6, 8, 3, 3), np.float32), method="tiled")  # k not a multiple of 8
    with pytest.raises(ValueError, match="tiled conv method needs"):
        kernels.conv2d_forward(x.astype(np.float64), np.zeros((8, 8, 3, 3)), method="tiled")
    assert conv.conv2d_method(8, 8, dtype=np.float64) == "im2col"  # gradient checks take the float64 path


@pytest.mark.parametrize("rows,c", [(5, 8), (3, 16), (7, 24), (130, 32), (257, 64), (1000, 128), (33, 48)])
@pytest.mark.parametrize("relu", [False, True])
def test_batchnorm_on_tiles_matches_the_reference_at_every_width(width, rows, c, relu):
    rng = np.random.default_rng(rows + c)
    x = (_rand(rng, rows, c) * 3 + 100).astype(np.float32)  # far from 0: the one-pass variance must be stable
    gamma, beta = _rand(rng, c) + 1.5, _rand(rng, c)
    assert (batchnorm._tiles_for(c, np.float32) is None) == (width == 0)
    y, mean, inv_std, var = kernels.batchnorm_forward_train(x, gamma, beta, relu=relu)
    np.testing.assert_allclose(y, reference.batchnorm_train(x, gamma, beta, relu=relu), rtol=1e-3, atol=1e-3)
    x64 = x.astype(np.float64)
    np.testing.assert_allclose(mean, x64.mean(0), rtol=1e-6)
    np.testing.assert_allclose(var, x64.var(0), rtol=1e-3, atol=1e-4)
    dy = _rand(rng, rows, c)
    dx, dgamma, dbeta = kernels.batchnorm_backward(x, dy, mean, inv_std, gamma, beta, relu=relu)
    xhat = (x64 - x64.mean(0)) / np.sqrt(x64.var(0) + 1e-5)
    g = dy * ((xhat * gamma + beta) > 0) if relu else dy.astype(np.float64)
    rdbeta, rdgamma = g.sum(0), (g * xhat).sum(0)
    rdx = gamma / np.sqrt(x64.var(0) + 1e-5) * (g - rdbeta / rows - xhat * rdgamma / rows)
    np.testing.assert_allclose(dbeta, rdbeta, rtol=1e-4, atol=1e-3)
    np.testing.assert_allclose(dgamma, rdgamma, rtol=1e-3, atol=1e-2)
    np.testing.assert_allclose(dx, rdx, rtol=1e-3, atol=1e-3)
    ye = kernels.batchnorm_forward_eval(x, gamma, beta, mean, var, relu=relu)
    np.testing.assert_allclose(ye, y, rtol=1e-4, atol=1e-4)


def test_tiled_relu_keeps_nan_so_a_diverging_run_is_seen():
    x = np.zeros((4, 16), np.float32)
    x[1, 3] = np.nan
    y = kernels.batchnorm_forward_eval(x, np.ones(16, np.float32), np.zeros(16, np.float32),
                                       np.zeros(16, np.float32), np.ones(16, np.float32), relu=True)
    assert np.isnan(y[1, 3]) and np.isfinite(np.delete(y.reshape(-1), 1 * 16 + 3)).all()


def test_simd_width_follows_the_cpu_and_the_override(monkeypatch):
    monkeypatch.setenv("LEAN_SIMD", "avx2")
    assert simd.simd_width() == 8
    monkeypatch.setenv("LEAN_SIMD", "off")
    assert simd.simd_width() == 0
    monkeypatch.setenv("LEAN_SIMD", "sse")
    with pytest.raises(ValueError, match="LEAN_SIMD must be one of"):
        simd.simd_width()
    monkeypatch.delenv("LEAN_SIMD")
    from llvmlite import binding

    features = binding.get_host_cpu_features()
    expected = 16 if features.get("avx512f") else 8 if features.get("avx2") and features.get("fma") else 0
    assert simd.simd_width() == expected
