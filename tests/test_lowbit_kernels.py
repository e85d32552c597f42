"""Power-of-two sparse products, SmartExchange rebuild, int8 and 4-bit kernels against references."""

import numpy as np
import pytest
import reference
import scipy.sparse as sp

from lean import kernels


def _pow2_csr(rng, m, k, density, e_min=-8):
    mask = rng.random((m, k)) < density
    exps = rng.integers(e_min, e_min + 12, (m, k))
    sign = np.where(rng.random((m, k)) < 0.5, -1, 1)
    a = sp.csr_matrix(np.where(mask, sign * np.exp2(exps), 0.0))
    a.sort_indices()
    codes = kernels.encode_pow2(np.sign(a.data), np.log2(np.abs(a.data)).astype(int), e_min)
    return a, codes


@pytest.mark.parametrize("m,k,n,density", [(1, 1, 1, 1.0), (7, 13, 5, 0.3), (64, 200, 33, 0.1), (5, 9, 4, 0.0)])
def test_pow2_csr_matmul_matches_reference_and_scipy(m, k, n, density):
    rng = np.random.default_rng(m * k + n)
    a, codes = _pow2_csr(rng, m, k, density)
    x = rng.standard_normal((k, n)).astype(np.float32)
    y = kernels.pow2_csr_matmul(a.indptr, a.indices, codes, -8, x)
    np.testing.assert_allclose(y, reference.pow2_csr_matmul(a.indptr, a.indices, codes, -8, x), rtol=1e-5,
                               atol=1e-5)
    np.testing.assert_allclose(y, a @ x, rtol=1e-5, atol=1e-5)
    xi = rng.integers(-1000, 1000, (k, n)).astype(np.int32) * 256  # fixed point with 8 fractional bits
    yi = kernels.pow2_csr_matmul_fixed(a.indptr, a.indices, codes, -8, xi)
    np.testing.assert_array_equal(yi, np.rint(a @ xi.astype(np.float64)).astype(np.int64))  # exact shifts


def test_pow2_errors():
    with pytest.raises(ValueError, match="code 0"):
        kernels.pow2_csr_matmul([0, 1], [0], [0], -8, np.ones((1, 2)))
    with pytest.raises(ValueError, match="column indices"):
        kernels.pow2_csr_matmul([0, 1], [3], [1], -8, np.ones((1, 2)))
    with pytest.raises(ValueError, match="indptr"):
        kernels.pow2_csr_matmul([1, 1], [], [], -8, np.ones((1, 2)))


def test_se_rebuild_equals_dense_product():
    rng = np.random.default_rng(1)
    codes = rng.integers(-12, 13, (3, 2, 5, 3)).astype(np.int8)
    codes[rng.random(codes.shape) < 0.5] = 0
    basis = rng.standard_normal((3, 2, 3, 3)).astype(np.float32)
    values = kernels.code_table(-10)[codes.astype(int) + 127].astype(np.float64)
    np.testing.assert_allclose(kernels.se_rebuild(codes, basis, -10),
                               np.einsum("kbml,kblj->kbmj", values, basis), rtol=1e-6, atol=1e-9)


INT8_CONV_CASES = [(1, 1, 1, 1, 1, 1, 0), (2, 7, 5, 6, 3, 2, 1), (3, 9, 16, 9, 3, 1, 1), (2, 5, 3, 4, 5, 1, 2),
                   (2, 12, 20, 37, 3, 1, 1), (1, 17, 8, 16, 1, 2, 0), (1, 10, 64, 32, 3, 2, 1)]
EXACT_METHODS = (("int", "exact-float", "auto") + (("vnni",) if kernels.VNNI_AVAILABLE else ())
                 + (("madd",) if kernels.MADD_AVAILABLE else ()))


@pytest.mark.parametrize("n,h,c,k,r,stride,padding", INT8_CONV_CASES)
def test_int8_conv_is_exact_integer_arithmetic(n, h, c, k, r, stride, padding):
    rng = np.random.default_rng(n * h + c)
    xq = rng.integers(-128, 128, (n, h, h + 1, c)).astype(np.int8)
    wq = rng.integers(-128, 128, (k, c, r, r)).astype(np.int8)
    w_scale = rng.random(k).astype(np.float32)
    exact = reference.conv2d(xq.astype(np.float64), wq.astype(np.float64), None, stride, padding)
    for method in EXACT_METHODS:
        y = kernels.int8_conv2d(xq, 0.5, wq, w_scale, stride, padding, method=method)
        np.testing.assert_allclose(y, exact * 0.5 * w_scale, rtol=1e-6, atol=1e-6)
    # the integer sums themselves are identical between the ways
    sums = [kernels.int8_conv2d(xq, 1.0, wq, 1.0, stride, padding, method=m) for m in EXACT_METHODS]
    for other in sums[1:]:
        np.testing.assert_array_equal(sums[0], other)


@pytest.mark.parametrize("n,h,c,k,r,stride,padding", INT8_CONV_CASES[1:5])
def test_int8_conv_takes_unsigned_activation_codes(n, h, c, k, r, stride, padding):
    rng = np.random.default_rng(c)
    xq = rng.integers(0, 256, (n, h, h + 2, c)).astype(np.uint8)  # 8-bit codes of a ReLU's output
    wq = rng.integers(-127, 128, (k, c, r, r)).astype(np.int8)
    exact = reference.conv2d(xq.astype(np.float64), wq.astype(np.float64), None, stride, padding)
    for method in EXACT_METHODS:
        y = kernels.int8_conv2d(xq, 1.0, wq, 1.0, stride, padding, method=method)
        np.testing.assert_array_equal(y, exact.astype(np.float32))


@pytest.mark.skipif(not kernels.VNNI_AVAILABLE, reason="this CPU has no AVX-512 VNNI")
def test_vnni_conv_at_the_code_extremes_and_wide_channels():
    # codes -128 and 127 are the unsigned 0 and 255 the instruction sees; 300 channels: 16,384 x 2,700 products
    xq = np.full((1, 4, 11, 300), -128, np.int8)
    xq[0, 1, ::2] = 127
    wq = np.full((19, 300, 3, 3), -128, np.int8)
    wq[3] = 127
    exact = reference.conv2d(xq.astype(np.float64), wq.astype(np.float64), None, 1, 1)
    # sums beyond 2^24: the float32 output is the exact sum rounded once
    np.testing.assert_array_equal(kernels.int8_conv2d(xq, 1.0, wq, 1.0, 1, 1, method="vnni"),
                                  exact.astype(np.float32))


@pytest.mark.skipif(not kernels.MADD_AVAILABLE, reason="this CPU has no AVX2")
def test_madd_conv_at_the_code_extremes_and_wide_channels():
    # uint8 255 x int8 -128 pairs: 2 x 32,640 overflows int16 (why vpmaddubsw is not used); vpmaddwd adds in int32
    xq = np.full((1, 4, 11, 301), 255, np.uint8)
    xq[0, 1, ::2] = 0
    wq = np.full((13, 301, 3, 3), -128, np.int8)
    wq[3] = 127
    exact = reference.conv2d(xq.astype(np.float64), wq.astype(np.float64), None, 1, 1)
    np.testing.assert_array_equal(kernels.int8_conv2d(xq, 1.0, wq, 1.0, 1, 1, method="madd"),
                                  exact.astype(np.float32))


def test_int8_conv_without_vnni_falls_back(monkeypatch):
    from lean.kernels import intconv

    monkeypatch.setattr(intconv, "VNNI_AVAILABLE", False)
    assert intconv.auto_int8_method(144) == ("madd" if kernels.MADD_AVAILABLE else "exact-float")
    monkeypatch.setattr(intconv, "MADD_AVAILABLE", False)
    assert intconv.auto_int8_method(144) == "exact-float"
    assert intconv.auto_int8_method(2000) == "int"
    xq = np.ones((1, 3, 3, 2), np.int8)
    wq = np.ones((1, 2, 3, 3), np.int8)
    assert kernels.int8_conv2d(xq, 1.0, wq, 1.0, 1, 1)[0, 1, 1, 0] == 18
    with pytest.raises(ValueError, match="AVX-512 VNNI"):
        kernels.int8_conv2d(xq, 1.0, wq, 1.0, method="vnni")


def test_exact_float_refuses_long_patches():
    xq = np.zeros((1, 3, 3, 200), np.int8)
    wq = np.zeros((2, 200, 3, 3), np.int8)  # patch of 1,800 codes
    with pytest.raises(ValueError, match="at most 1024"):
        kernels.int8_conv2d(xq, 1.0, wq, 1.0, method="exact-float")
    assert kernels.int8_conv2d(xq, 1.0, wq, 1.0, method="int").shape == (1, 1, 1, 2)


def test_int8_conv_refuses_patches_whose_sums_may_overflow_int32():
    xq = np.zeros((1, 1, 1, 70_000), np.uint8)  # uint8 x int8 products reach 255 * 128: at most 65,793 codes
    wq = np.zeros((1, 70_000, 1, 1), np.int8)
    with pytest.raises(ValueError, match="overflow int32"):
        kernels.int8_conv2d(xq, 1.0, wq, 1.0)
    assert kernels.int8_conv2d(xq.view(np.int8), 1.0, wq, 1.0).shape == (1, 1, 1, 1)  # int8: up to 131,072


def test_int8_matmul_and_int4_packing():
    rng = np.random.default_rng(2)
    a = rng.integers(-128, 128, (33, 70)).astype(np.int8)
    b = rng.integers(-128, 128, (7, 70)).astype(np.int8)
    np.testing.assert_array_equal(kernels.int8_matmul(a, b), a.astype(np.int64) @ b.astype(np.int64).T)
    codes = rng.integers(-8, 8, 101)
    packed = kernels.pack_int4(codes)
    assert packed.size == 51
    np.testing.assert_array_equal(kernels.unpack_int4(packed, 101), codes)
    with pytest.raises(ValueError, match="4-bit"):
        kernels.pack_int4([9])


def test_int4_conv_equals_int8_conv_on_the_same_codes():
    rng = np.random.default_rng(4)
    xq = rng.integers(-128, 128, (2, 6, 6, 5)).astype(np.int8)
    wq = rng.integers(-8, 8, (7, 5, 3, 3)).astype(np.int8)
    packed = kernels.pack_int4(wq)
    np.testing.assert_array_equal(kernels.int4_conv2d(xq, 0.1, packed, wq.shape, 0.2, 1, 1),
                                  kernels.int8_conv2d(xq, 0.1, wq, 0.2, 1, 1))
    with pytest.raises(ValueError, match="cannot hold"):
        kernels.int4_conv2d(xq, 0.1, packed[:3], wq.shape, 0.2)
