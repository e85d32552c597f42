"""Each kernel against its plain NumPy reference (tests/reference.py)."""

import numpy as np
import pytest
import reference

from lean import kernels

CONV_CASES = [
    # n, h, w, c, k, r, stride, padding, groups
    (1, 1, 1, 1, 1, 1, 1, 0, 1),
    (2, 7, 5, 3, 5, 3, 1, 1, 1),
    (3, 8, 9, 4, 6, 3, 2, 1, 2),
    (2, 6, 6, 4, 4, 3, 1, 1, 4),     # depthwise
    (2, 5, 7, 6, 6, 3, 2, 1, 6),     # depthwise, stride 2
    (1, 4, 4, 3, 2, 1, 1, 0, 1),     # pointwise
    (2, 9, 9, 2, 3, 5, 2, 2, 1),
    (1, 3, 3, 5, 7, 3, 1, 0, 1),     # 1x1 output
    (4, 6, 6, 8, 4, 1, 2, 0, 1),     # strided 1x1 (a projection shortcut)
    (2, 10, 10, 16, 16, 3, 1, 1, 1),
    (3, 9, 7, 1, 6, 5, 1, 2, 1),     # LeNet-5's first layer on a non-square image
    (2, 6, 11, 2, 3, 3, 1, 0, 1),
]


def _rand(rng, *shape):
    return rng.standard_normal(shape).astype(np.float32)


@pytest.mark.parametrize("n,h,w,c,k,r,stride,padding,groups,method", [
    (*case, method) for case in CONV_CASES for method in ("auto", "im2col", "direct")
    if method != "direct" or (case[-1] == 1 and case[-3] == 1)  # the direct kernel: groups=1, stride 1
])
def test_conv_forward_and_backward_match_reference(n, h, w, c, k, r, stride, padding, groups, method):
    rng = np.random.default_rng(abs(hash((n, h, w, c, k, r, stride, padding, groups))) % 2**32)
    x = _rand(rng, n, h, w, c)
    wt = _rand(rng, k, c // groups, r, r)
    b = _rand(rng, k)
    y = kernels.conv2d_forward(x, wt, b, stride, padding, groups, method=method)
    ref = reference.conv2d(x, wt, b, stride, padding, groups)
    np.testing.assert_allclose(y, ref, rtol=1e-4, atol=1e-4)
    dy = _rand(rng, *y.shape)
    dx, dw, db = kernels.conv2d_backward(x, wt, dy, stride, padding, groups, method=method)
    rdx, rdw, rdb = reference.conv2d_grads(x, wt, dy, stride, padding, groups)
    np.testing.assert_allclose(dx, rdx, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(dw, rdw, rtol=1e-4, atol=1e-3)
    np.testing.assert_allclose(db, rdb, rtol=1e-4, atol=1e-4)


def test_direct_conv_rejects_what_it_cannot_do():
    x, wt = np.zeros((1, 6, 6, 2), np.float32), np.zeros((4, 2, 3, 3), np.float32)
    with pytest.raises(ValueError, match="stride 1"):
        kernels.conv2d_forward(x, wt, None, 2, 1, method="direct")
    assert kernels.conv2d_forward(x, wt, None, 2, 1).shape == (1, 3, 3, 4)  # auto falls back to im2col


def test_conv_non_contiguous_and_zero_input():
    rng = np.random.default_rng(1)
    base = _rand(rng, 3, 9, 9, 8)
    x = base[:, ::2, 1:, ::2]  # strided view, not contiguous
    assert not x.flags.c_contiguous
    wt = _rand(rng, 5, 4, 3, 3)
    np.testing.assert_allclose(kernels.conv2d_forward(x, wt, None, 1, 1), reference.conv2d(x, wt, None, 1, 1),
                               rtol=1e-4, atol=1e-4)
    zeros = np.zeros((2, 5, 5, 4), np.float32)
    assert not kernels.conv2d_forward(zeros, wt, None, 1, 1).any()
    dx, dw, db = kernels.conv2d_backward(zeros, wt, np.zeros((2, 5, 5, 5), np.float32), 1, 1)
    assert not dx.any() and not dw.any() and not db.any()


def test_conv_large_batch_uses_several_chunks_and_threads():
    # enough rows that the chunked path and the per-thread image split both run
    rng = np.random.default_rng(2)
    x = _rand(rng, 9, 24, 24, 16)
    wt = _rand(rng, 16, 16, 3, 3)
    y = kernels.conv2d_forward(x, wt, None, 1, 1)
    np.testing.assert_allclose(y, reference.conv2d(x, wt, None, 1, 1), rtol=1e-4, atol=2e-4)
    dy = _rand(rng, *y.shape)
    dx, dw, _ = kernels.conv2d_backward(x, wt, dy, 1, 1)
    rdx, rdw, _ = reference.conv2d_grads(x, wt, dy, 1, 1)
    np.testing.assert_allclose(dx, rdx, rtol=1e-4, atol=2e-4)
    np.testing.assert_allclose(dw, rdw, rtol=1e-4, atol=5e-3)


def test_conv_rejects_bad_shapes():
    x = np.zeros((1, 5, 5, 3), np.float32)
    with pytest.raises(ValueError, match="input channels"):
        kernels.conv2d_forward(x, np.zeros((4, 2, 3, 3), np.float32))
    with pytest.raises(ValueError, match="empty"):
        kernels.conv2d_forward(x, np.zeros((4, 3, 7, 7), np.float32))
    with pytest.raises(ValueError, match=r"\(n, h, w, c\)"):
        kernels.conv2d_forward(np.zeros((5, 5, 3), np.float32), np.zeros((4, 3, 3, 3), np.float32))
    with pytest.raises(ValueError, match="groups"):
        kernels.conv2d_forward(x, np.zeros((4, 1, 3, 3), np.float32), groups=2)
    with pytest.raises(ValueError, match="unknown conv method"):
        kernels.conv2d_forward(x, np.zeros((4, 3, 3, 3), np.float32), method="fft")


@pytest.mark.parametrize("shape", [(1, 1, 1, 1), (2, 3, 5, 7), (5, 4), (64, 9, 9, 3), (3, 1)])
@pytest.mark.parametrize("relu", [False, True])
def test_batchnorm_train_matches_reference(shape, relu):
    rng = np.random.default_rng(3)
    x = (_rand(rng, *shape) * 3 + 1).astype(np.float32)
    c = shape[-1]
    gamma, beta = _rand(rng, c) + 1.5, _rand(rng, c)
    y, mean, inv_std, var = kernels.batchnorm_forward_train(x, gamma, beta, relu=relu)
    np.testing.assert_allclose(y.reshape(-1, c), reference.batchnorm_train(x, gamma, beta, relu=relu),
                               rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(mean, x.reshape(-1, c).mean(0), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(var, x.reshape(-1, c).astype(np.float64).var(0), rtol=1e-4, atol=1e-5)


def test_batchnorm_eval_and_non_contiguous():
    rng = np.random.default_rng(4)
    x = _rand(rng, 4, 6, 6, 10)[..., ::2]
    gamma, beta = _rand(rng, 5), _rand(rng, 5)
    rm, rv = _rand(rng, 5), np.abs(_rand(rng, 5)) + 0.5
    y = kernels.batchnorm_forward_eval(x, gamma, beta, rm, rv, relu=True)
    expected = np.maximum((x - rm) / np.sqrt(rv + 1e-5) * gamma + beta, 0)
    np.testing.assert_allclose(y, expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("k,stride,padding", [
    (2, 2, 0), (2, 1, 0), (2, 2, 1), (3, 2, 1), (3, 1, 1), (1, 1, 0), (3, 3, 0)])
@pytest.mark.parametrize("op", ["max", "avg"])
def test_pooling_matches_reference(k, stride, padding, op):
    rng = np.random.default_rng(5)
    x = _rand(rng, 3, 7, 6, 5)
    if op == "max":
        y, argmax = kernels.maxpool_forward(x, k, stride, padding)
    else:
        y = kernels.avgpool_forward(x, k, stride, padding)
    np.testing.assert_allclose(y, reference.pool(x, k, stride, padding, op), rtol=1e-5, atol=1e-6)
    # backward: the adjoint identity <dy, pool(x)'s Jacobian dx> checked by finite differences in float64
    dy = _rand(rng, *y.shape)
    if op == "max":
        dx = kernels.maxpool_backward(dy, argmax, x.shape)
    else:
        dx = kernels.avgpool_backward(dy, x.shape, k, stride, padding)
    x64 = x.astype(np.float64)
    direction = rng.standard_normal(x.shape)
    eps = 1e-6
    def f(v):
        return (reference.pool(v, k, stride, padding, op) * dy).sum()

    numeric = (f(x64 + eps * direction) - f(x64 - eps * direction)) / (2 * eps)
    np.testing.assert_allclose((dx * direction).sum(), numeric, rtol=1e-4, atol=1e-4)


def test_pooling_rejects_bad_window():
    with pytest.raises(ValueError):
        kernels.maxpool_forward(np.zeros((1, 4, 4, 1), np.float32), 2, 0)
    with pytest.raises(ValueError):
        kernels.avgpool_forward(np.zeros((4, 4, 1), np.float32), 2, 2)


@pytest.mark.parametrize("shape", [(1,), (3, 5), (2, 7, 9, 3), (0, 4), (3, 200, 300)])
def test_add_relu_and_relu_backward(shape):
    rng = np.random.default_rng(6)
    a, b, dy = _rand(rng, *shape), _rand(rng, *shape), _rand(rng, *shape)
    y = kernels.add_relu(a, b)
    np.testing.assert_array_equal(y, np.maximum(a + b, 0))
    np.testing.assert_array_equal(kernels.relu(a), np.maximum(a, 0))
    np.testing.assert_array_equal(kernels.relu(a.astype(np.float64)), np.maximum(a, 0).astype(np.float64))
    np.testing.assert_array_equal(kernels.relu_backward(dy, y), np.where(y > 0, dy, 0))
    if len(shape) > 1 and shape[0] > 1:  # non-contiguous operands
        np.testing.assert_array_equal(kernels.add_relu(a[::2], b[::2]), np.maximum(a[::2] + b[::2], 0))
    with pytest.raises(ValueError, match="differ"):
        kernels.add_relu(a, np.zeros(a.size + 1, np.float32))


def test_relu_keeps_nan_so_a_diverging_run_is_seen():
    x = np.array([np.nan, -1.0, 2.0, -np.inf, np.inf], np.float32)
    for y in (kernels.relu(x), kernels.add_relu(x, np.zeros_like(x))):
        assert np.isnan(y[0]) and list(y[1:]) == [0.0, 2.0, 0.0, np.inf]



@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_fake_quantize_equals_the_numpy_expression(dtype):
    rng = np.random.default_rng(9)
    x = (rng.standard_normal((3, 70, 70, 9)) * 4).astype(dtype)  # above the one-thread size: split in ranges
    x.reshape(-1)[:6] = [0.5, 1.5, -0.5, 2.5, 1e9, -1e9]  # ties round to even; far values clip
    for step, lo, hi in ((np.float32(0.5), 0, 255), (np.float32(0.5), -127, 127),
                         (np.float32(np.float32(3.7) / 255), 0, 255), (np.float32(np.float32(1.3) / 127), -127, 127)):
        # half-codes of a step whose reciprocal is inexact: a fast-math x * (1 / step) rounds some of them the
        # other way (34 of 600 plus 2 million random values with step 3.7 / 255)
        x.reshape(-1)[6:606] = ((np.arange(-300, 300) + 0.5) * step).astype(dtype)
        expected = (np.clip(np.rint(x / step), lo, hi) * step).astype(np.float32)
        got = kernels.fake_quantize(x, step, lo, hi)
        assert got.dtype == np.float32 and got.shape == x.shape
        np.testing.assert_array_equal(got, expected)
