"""The kernels' wrappers refuse bad arguments with a ValueError naming them (the compiled kernels run without
bounds checks), and take non-contiguous input as its contiguous copy."""

import re

import numpy as np
import pytest

from lean import kernels


def z(*shape, dtype=np.float32):
    return np.zeros(shape, dtype)


X = z(1, 4, 4, 2)        # two channels, stride 1: the direct conv path
W = z(5, 2, 3, 3)
DY = z(1, 4, 4, 5)       # conv2d(X, W, padding=1)'s output shape
BN = z(2, 3, 3, 4)       # batch-norm input, c = 4
C4 = np.ones(4, np.float32)
P_X = z(1, 4, 4, 2)      # pooling input
P_DY = z(1, 2, 2, 2)     # its 2x2 stride-2 output
ARGMAX = np.zeros((1, 2, 2, 2), np.int32)
XQ = np.zeros((1, 4, 4, 2), np.int8)
WQ = np.zeros((3, 2, 3, 3), np.int8)
CSR = ([0, 1, 2], [0, 1], [1, -2])  # two rows, one non-zero each
DENSE = z(2, 3)
CODES = np.zeros((2, 1, 3, 2), np.int8)
BASIS = z(2, 1, 2, 2)
G = z(3, 4)


BAD = [
    # conv2d_forward / conv2d_backward / conv_output_size
    ("conv short bias, direct", lambda: kernels.conv2d_forward(X, W, z(2), 1, 1), "bias must have shape (5,)"),
    ("conv short bias, im2col", lambda: kernels.conv2d_forward(X, W, z(1), 1, 1, method="im2col"),
     "bias must have shape (5,)"),
    ("conv long bias, depthwise", lambda: kernels.conv2d_forward(z(1, 4, 4, 2), z(2, 1, 3, 3), z(3), 1, 1, 2),
     "bias must have shape (2,)"),
    ("conv 2-D bias", lambda: kernels.conv2d_forward(X, W, z(5, 1), 1, 1), "bias must have shape (5,)"),
    ("conv complex bias", lambda: kernels.conv2d_forward(X, W, z(5, dtype=np.complex64), 1, 1),
     "bias must hold real numbers"),
    ("conv object input", lambda: kernels.conv2d_forward(X.astype(object), W, None, 1, 1),
     "input x must hold real numbers"),
    ("conv string input", lambda: kernels.conv2d_forward(X.astype(str), W, None, 1, 1),
     "input x must hold real numbers"),
    ("conv complex weight", lambda: kernels.conv2d_forward(X, W.astype(np.complex64), None, 1, 1),
     "weight w must hold real numbers"),
    ("conv fractional stride", lambda: kernels.conv2d_forward(X, W, None, 1.5, 1), "stride must be an integer"),
    ("conv string groups", lambda: kernels.conv2d_forward(X, W, None, 1, 1, "1"), "groups must be an integer"),
    ("conv backward dy shape", lambda: kernels.conv2d_backward(X, W, z(1, 4, 4, 4), 1, 1),
     "dy must have shape (1, 4, 4, 5)"),
    ("conv backward complex dy", lambda: kernels.conv2d_backward(X, W, DY.astype(np.complex64), 1, 1),
     "dy must hold real numbers"),
    ("conv backward complex x", lambda: kernels.conv2d_backward(X.astype(np.complex64), W, DY, 1, 1),
     "input x must hold real numbers"),
    ("conv_output_size stride 0", lambda: kernels.conv_output_size(5, 3, 0, 1), "stride must be >= 1"),
    ("conv_output_size kernel 0", lambda: kernels.conv_output_size(5, 0, 1, 0), "kernel must be >= 1"),
    ("conv_output_size padding -1", lambda: kernels.conv_output_size(5, 1, 1, -1), "padding must be >= 0"),
    # batch norm
    ("bn train gamma shape", lambda: kernels.batchnorm_forward_train(BN, z(3), C4), "gamma must have shape (4,)"),
    ("bn train beta shape", lambda: kernels.batchnorm_forward_train(BN, C4, z(1)), "beta must have shape (4,)"),
    ("bn train 1-D input", lambda: kernels.batchnorm_forward_train(z(4), C4, C4), "channel axis last"),
    ("bn train complex input", lambda: kernels.batchnorm_forward_train(BN.astype(np.complex64), C4, C4),
     "input x must hold real numbers"),
    ("bn train complex gamma", lambda: kernels.batchnorm_forward_train(BN, C4.astype(np.complex64), C4),
     "gamma must hold real numbers"),
    ("bn train negative eps", lambda: kernels.batchnorm_forward_train(BN, C4, C4, eps=-1.0), "eps must be >= 0"),
    ("bn eval gamma (1,)", lambda: kernels.batchnorm_forward_eval(BN, z(1), C4, C4, C4),
     "gamma must have shape (4,)"),
    ("bn eval beta (5,)", lambda: kernels.batchnorm_forward_eval(BN, C4, z(5), C4, C4), "beta must have shape (4,)"),
    ("bn eval running_mean (5,)", lambda: kernels.batchnorm_forward_eval(BN, C4, C4, z(5), C4),
     "running_mean must have shape (4,)"),
    ("bn eval running_var (1,)", lambda: kernels.batchnorm_forward_eval(BN, C4, C4, C4, z(1)),
     "running_var must have shape (4,)"),
    ("bn eval object input", lambda: kernels.batchnorm_forward_eval(BN.astype(object), C4, C4, C4, C4),
     "input x must hold real numbers"),
    ("bn eval NaN eps", lambda: kernels.batchnorm_forward_eval(BN, C4, C4, C4, C4, eps=np.nan),
     "eps must be finite"),
    ("bn backward mean (1,)", lambda: kernels.batchnorm_backward(BN, BN, z(1), C4, C4, C4),
     "mean must have shape (4,)"),
    ("bn backward inv_std (3,)", lambda: kernels.batchnorm_backward(BN, BN, C4, z(3), C4, C4),
     "inv_std must have shape (4,)"),
    ("bn backward gamma (3,)", lambda: kernels.batchnorm_backward(BN, BN, C4, C4, z(3), C4),
     "gamma must have shape (4,)"),
    ("bn backward beta (5,)", lambda: kernels.batchnorm_backward(BN, BN, C4, C4, C4, z(5)),
     "beta must have shape (4,)"),
    ("bn backward dy rows", lambda: kernels.batchnorm_backward(BN, z(2, 3, 4, 4), C4, C4, C4, C4),
     "dy must have the input's shape"),
    ("bn backward dy reshaped", lambda: kernels.batchnorm_backward(BN, BN.reshape(6, 3, 4), C4, C4, C4, C4),
     "dy must have the input's shape"),
    ("bn backward complex dy", lambda: kernels.batchnorm_backward(BN, BN.astype(np.complex64), C4, C4, C4, C4),
     "dy must hold real numbers"),
    # pooling
    ("maxpool complex input", lambda: kernels.maxpool_forward(P_X.astype(np.complex64), 2, 2),
     "input x must hold real numbers"),
    ("maxpool fractional kernel", lambda: kernels.maxpool_forward(P_X, 2.5, 2), "kernel must be an integer"),
    ("maxpool stride 0", lambda: kernels.maxpool_forward(P_X, 2, 0), "bad pooling window"),
    ("maxpool 3-D input", lambda: kernels.maxpool_forward(z(4, 4, 2), 2, 2), "must be (n, h, w, c)"),
    ("maxpool argmax past the image", lambda: kernels.maxpool_backward(P_DY, ARGMAX + 32, P_X.shape),
     "argmax must lie in 0..31"),
    ("maxpool negative argmax", lambda: kernels.maxpool_backward(P_DY, ARGMAX - 1, P_X.shape),
     "argmax must lie in 0..31"),
    ("maxpool float argmax", lambda: kernels.maxpool_backward(P_DY, ARGMAX.astype(np.float32), P_X.shape),
     "argmax must be an integer array"),
    ("maxpool argmax shape", lambda: kernels.maxpool_backward(P_DY, ARGMAX[..., :1], P_X.shape),
     "argmax must have dy's shape"),
    ("maxpool dy images", lambda: kernels.maxpool_backward(z(2, 2, 2, 2), np.zeros((2, 2, 2, 2), np.int32),
                                                           P_X.shape), "dy must be (1, oh, ow, 2)"),
    ("maxpool dy channels", lambda: kernels.maxpool_backward(z(1, 2, 2, 3), np.zeros((1, 2, 2, 3), np.int32),
                                                             P_X.shape), "dy must be (1, oh, ow, 2)"),
    ("maxpool input_shape length", lambda: kernels.maxpool_backward(P_DY, ARGMAX, (4, 4, 2)),
     "input_shape must be a shape of 4 ints"),
    ("maxpool complex dy", lambda: kernels.maxpool_backward(P_DY.astype(np.complex64), ARGMAX, P_X.shape),
     "dy must hold real numbers"),
    ("avgpool complex input", lambda: kernels.avgpool_forward(P_X.astype(np.complex64), 2, 2),
     "input x must hold real numbers"),
    ("avgpool padding over half", lambda: kernels.avgpool_forward(P_X, 2, 2, 2), "bad pooling window"),
    ("avgpool dy spatial", lambda: kernels.avgpool_backward(z(1, 3, 3, 2), P_X.shape, 2, 2),
     "dy must be (1, 2, 2, 2)"),
    ("avgpool dy channels", lambda: kernels.avgpool_backward(z(1, 2, 2, 3), P_X.shape, 2, 2),
     "dy must be (1, 2, 2, 2)"),
    ("avgpool dy images", lambda: kernels.avgpool_backward(z(3, 2, 2, 2), P_X.shape, 2, 2),
     "dy must be (1, 2, 2, 2)"),
    ("avgpool negative input_shape", lambda: kernels.avgpool_backward(P_DY, (1, -4, 4, 2), 2, 2),
     "input_shape[1] must be >= 0"),
    ("avgpool backward window", lambda: kernels.avgpool_backward(P_DY, P_X.shape, 2, 0), "bad pooling window"),
    # element-wise
    ("add_relu object operand", lambda: kernels.add_relu(G.astype(object), G), "operand a must hold real numbers"),
    ("add_relu string operand", lambda: kernels.add_relu(G, G.astype(str)), "operand b must hold real numbers"),
    ("relu complex", lambda: kernels.relu(G.astype(np.complex64)), "relu input x must hold real numbers"),
    ("relu_backward shapes", lambda: kernels.relu_backward(G, z(4, 3)), "relu_backward shapes differ"),
    ("relu_backward complex y", lambda: kernels.relu_backward(G, G.astype(np.complex64)),
     "relu output y must hold real numbers"),
    ("relu_backward object dy", lambda: kernels.relu_backward(G.astype(object), G), "dy must hold real numbers"),
    # int8 / int4
    ("int8 conv float activations", lambda: kernels.int8_conv2d(XQ.astype(np.float32), 1.0, WQ, 1.0),
     "x_codes must be int8 (signed) or uint8"),
    ("int8 conv int32 activations", lambda: kernels.int8_conv2d(XQ.astype(np.int32), 1.0, WQ, 1.0),
     "x_codes must be int8 (signed) or uint8"),
    ("int8 conv weight codes range", lambda: kernels.int8_conv2d(XQ, 1.0, WQ.astype(np.int16) + 200, 1.0),
     "w_codes must lie in -128..127"),
    ("int8 conv float weights", lambda: kernels.int8_conv2d(XQ, 1.0, WQ.astype(np.float32), 1.0),
     "w_codes must be an integer array"),
    ("int8 conv w_scale shape", lambda: kernels.int8_conv2d(XQ, 1.0, WQ, np.ones(4)),
     "w_scale must be a scalar or (3,)"),
    ("int8 conv NaN w_scale", lambda: kernels.int8_conv2d(XQ, 1.0, WQ, np.array([1.0, np.nan, 1.0])),
     "w_scale must be finite"),
    ("int8 conv complex w_scale", lambda: kernels.int8_conv2d(XQ, 1.0, WQ, 1j), "w_scale must hold real numbers"),
    ("int8 conv x_scale 0", lambda: kernels.int8_conv2d(XQ, 0.0, WQ, 1.0), "x_scale must be > 0"),
    ("int8 conv x_scale inf", lambda: kernels.int8_conv2d(XQ, np.inf, WQ, 1.0), "x_scale must be finite"),
    ("int8 conv x_scale vector", lambda: kernels.int8_conv2d(XQ, np.ones(2), WQ, 1.0),
     "x_scale must be a real scalar"),
    ("int8 conv method", lambda: kernels.int8_conv2d(XQ, 1.0, WQ, 1.0, method="fft"), "unknown int8 conv method"),
    ("int8 conv channels", lambda: kernels.int8_conv2d(XQ, 1.0, z(3, 3, 3, 3, dtype=np.int8), 1.0),
     "input channels"),
    ("int4 conv packed too long", lambda: kernels.int4_conv2d(XQ, 1.0, np.zeros(28, np.uint8), WQ.shape, 1.0),
     "28 bytes hold more than 54 4-bit codes"),
    ("int4 conv weight_shape", lambda: kernels.int4_conv2d(XQ, 1.0, np.zeros(27, np.uint8), (3, 2, 9), 1.0),
     "weight_shape must be a shape of 4 ints"),
    ("int4 conv packed over a byte", lambda: kernels.int4_conv2d(XQ, 1.0, np.full(27, 256, np.int16), WQ.shape,
                                                                 1.0), "packed 4-bit codes must lie in 0..255"),
    ("int8_matmul float operand", lambda: kernels.int8_matmul(z(2, 3), np.zeros((4, 3), np.int8)),
     "operand a must be an integer array"),
    ("int8_matmul operand range", lambda: kernels.int8_matmul(np.zeros((2, 3), np.int8), np.full((4, 3), 300)),
     "operand b must lie in -128..127"),
    ("int8_matmul shapes", lambda: kernels.int8_matmul(np.zeros((2, 3), np.int8), np.zeros((4, 2), np.int8)),
     "int8_matmul needs (m, p) and (k, p)"),
    ("pack_int4 float codes", lambda: kernels.pack_int4(np.array([3.7])), "4-bit codes must be an integer array"),
    ("pack_int4 wide codes", lambda: kernels.pack_int4(np.array([65536 + 3])), "4-bit codes must lie in -8..7"),
    ("unpack_int4 count too large", lambda: kernels.unpack_int4(np.zeros(2, np.uint8), 5), "cannot hold 5"),
    ("unpack_int4 count too small", lambda: kernels.unpack_int4(np.zeros(4, np.uint8), 3), "hold more than 3"),
    ("unpack_int4 negative count", lambda: kernels.unpack_int4(np.zeros(2, np.uint8), -1), "count must be >= 0"),
    # k-means
    ("kmeans_assign no centres", lambda: kernels.kmeans_assign(z(5, 2), z(0, 2)), "need at least one centre"),
    ("kmeans_assign 3-D samples", lambda: kernels.kmeans_assign(z(5, 2, 1), z(2, 2)), "must be (n,) or (n, d)"),
    ("kmeans_assign complex centres", lambda: kernels.kmeans_assign(z(5, 2), z(2, 2, dtype=np.complex64)),
     "centres must be floating point"),
    ("kmeans_assign NaN centre", lambda: kernels.kmeans_assign(z(5, 2), np.array([[np.nan, 0.0], [1.0, 1.0]])),
     "centres must be finite"),
    ("kmeans_update k 0", lambda: kernels.kmeans_update(z(3, 2), np.zeros(3, int), 0), "k (clusters) must be >= 1"),
    ("kmeans_update float labels", lambda: kernels.kmeans_update(z(3, 2), np.array([0.0, 1.5, 1.0]), 2),
     "labels must be an integer array"),
    ("kmeans_update labels length", lambda: kernels.kmeans_update(z(3, 2), np.zeros(4, int), 2),
     "labels must be (3,)"),
    ("segment_sum label k", lambda: kernels.segment_sum(z(3, 2), np.array([0, 1, 3]), 3),
     "labels must lie in 0..2"),
    ("segment_sum negative label", lambda: kernels.segment_sum(z(3, 2), np.array([0, -1, 2]), 3),
     "labels must lie in 0..2"),
    ("segment_sum short labels", lambda: kernels.segment_sum(z(3, 2), np.array([0, 1]), 3), "labels must be (3,)"),
    ("segment_sum float labels", lambda: kernels.segment_sum(z(3, 2), np.array([0.0, 1.0, 2.0]), 3),
     "labels must be an integer array"),
    ("segment_sum k 0", lambda: kernels.segment_sum(z(3, 2), np.zeros(3, int), 0), "k (segments) must be >= 1"),
    # power-of-two products
    ("pow2 code -128", lambda: kernels.pow2_csr_matmul(*CSR[:2], [1, -128], -8, DENSE),
     "codes must lie in -127..127"),
    ("pow2 wide codes", lambda: kernels.pow2_csr_matmul(*CSR[:2], np.array([1, 300]), -8, DENSE),
     "codes must lie in -127..127"),
    ("pow2 float codes", lambda: kernels.pow2_csr_matmul(*CSR[:2], [1.0, 2.5], -8, DENSE),
     "codes must be an integer array"),
    ("pow2 float indices", lambda: kernels.pow2_csr_matmul(CSR[0], [0.0, 1.5], CSR[2], -8, DENSE),
     "column indices must be an integer array"),
    ("pow2 2-D indptr", lambda: kernels.pow2_csr_matmul([[0, 1, 2]], *CSR[1:], -8, DENSE),
     "indptr must be (m + 1,)"),
    ("pow2 indices count", lambda: kernels.pow2_csr_matmul(CSR[0], [0], CSR[2], -8, DENSE),
     "indices and codes must be (2,)"),
    ("pow2 complex dense", lambda: kernels.pow2_csr_matmul(*CSR, -8, DENSE.astype(np.complex64)),
     "dense operand must hold real numbers"),
    ("pow2 1-D dense", lambda: kernels.pow2_csr_matmul(*CSR, -8, z(2)), "dense operand must be (k, n)"),
    ("pow2 dense without rows", lambda: kernels.pow2_csr_matmul(*CSR, -8, z(0, 3)),
     "column indices must lie in 0..-1"),
    ("pow2 fractional e_min", lambda: kernels.pow2_csr_matmul(*CSR, -8.5, DENSE), "e_min must be an integer"),
    ("pow2 fixed wide dense", lambda: kernels.pow2_csr_matmul_fixed(*CSR, -8, np.full((2, 3), 2**40)),
     "fixed-point operand must lie in"),
    ("pow2 fixed float dense", lambda: kernels.pow2_csr_matmul_fixed(*CSR, -8, DENSE),
     "fixed-point operand must be a 2-D integer array"),
    ("pow2 fixed shift past 63", lambda: kernels.pow2_csr_matmul_fixed(*CSR[:2], [1, 10], 60,
                                                                       np.ones((2, 3), np.int32)),
     "code exponents |code| - 1 + e_min must lie in -63..63"),
    ("pow2 fixed code -128", lambda: kernels.pow2_csr_matmul_fixed(*CSR[:2], [1, -128], -8,
                                                                   np.ones((2, 3), np.int32)),
     "codes must lie in -127..127"),
    ("se_rebuild code -128", lambda: kernels.se_rebuild(np.full(CODES.shape, -128, np.int8), BASIS, -8),
     "codes must lie in -127..127"),
    ("se_rebuild float codes", lambda: kernels.se_rebuild(CODES.astype(np.float32), BASIS, -8),
     "codes must be an integer array"),
    ("se_rebuild basis shape", lambda: kernels.se_rebuild(CODES, z(2, 1, 3, 3), -8), "do not fit"),
    ("se_rebuild complex basis", lambda: kernels.se_rebuild(CODES, BASIS.astype(np.complex64), -8),
     "basis must hold real numbers"),
    ("se_rebuild fractional e_min", lambda: kernels.se_rebuild(CODES, BASIS, 0.5), "e_min must be an integer"),
    ("code_table fractional e_min", lambda: kernels.code_table(-8.5), "e_min must be an integer"),
    ("encode_pow2 exponent below e_min", lambda: kernels.encode_pow2([1, -1], [-9, 0], -8),
     "exponent must lie in e_min..e_min + 126"),
    ("encode_pow2 exponent past 127 codes", lambda: kernels.encode_pow2([1, 0], [119, 500], -8),
     "exponent must lie in e_min..e_min + 126"),
    ("encode_pow2 sign 2", lambda: kernels.encode_pow2([2], [0], -8), "sign must be -1, 0 or 1"),
    ("encode_pow2 fractional exponent", lambda: kernels.encode_pow2([1], [0.5], -8),
     "exponent must hold integers"),
    ("encode_pow2 complex sign", lambda: kernels.encode_pow2(np.array([1j]), [0], -8),
     "sign must hold real numbers"),
    # quantizers and the PSG selector
    ("fixed_point step inf", lambda: kernels.fixed_point(G, np.inf, 8), "step must be finite"),
    ("fixed_point step 0", lambda: kernels.fixed_point(G, 0.0, 8), "step must be > 0"),
    ("fixed_point bits 1", lambda: kernels.fixed_point(G, 0.1, 1), "bits must be in 2..24"),
    ("fixed_point fractional bits", lambda: kernels.fixed_point(G, 0.1, 3.5), "bits must be an integer"),
    ("fixed_point complex input", lambda: kernels.fixed_point(G.astype(np.complex64), 0.1, 8),
     "input x must hold real numbers"),
    ("msb_predictor keep_bits", lambda: kernels.msb_predictor(G, 0.1, 8, 9), "keep_bits must be in 1..8"),
    ("msb_predictor string input", lambda: kernels.msb_predictor(G.astype(str), 0.1, 8, 4),
     "input x must hold real numbers"),
    ("stochastic_round fractional seed", lambda: kernels.stochastic_round(G, 0.1, 8, 1.5),
     "seed must be an integer"),
    ("stochastic_round object input", lambda: kernels.stochastic_round(G.astype(object), 0.1, 8, 0),
     "input x must hold real numbers"),
    ("sign_select negative tau", lambda: kernels.sign_select(G, G, -1.0), "tau must be >= 0"),
    ("sign_select NaN tau", lambda: kernels.sign_select(G, G, np.nan), "tau must be a number"),
    ("sign_select shapes", lambda: kernels.sign_select(G, z(4, 3), 0.1), "differ in shape"),
    ("sign_select complex", lambda: kernels.sign_select(G.astype(np.complex64), G, 0.1),
     "predicted gradient must hold real numbers"),
    ("symmetric_step bits 1", lambda: kernels.symmetric_step(G + 1, 1), "bits must be >= 2"),
    ("symmetric_step strings", lambda: kernels.symmetric_step(G.astype(str), 8), "x must hold real numbers"),
]


@pytest.mark.parametrize("call,fragment", [pytest.param(call, fragment, id=name) for name, call, fragment in BAD])
def test_bad_argument_raises_value_error_naming_it(call, fragment):
    with pytest.raises(ValueError, match=re.escape(fragment)):
        call()


def _strided(rng, *shape):
    """A non-contiguous float32 view of ``shape``: every other element of a larger array along the last axis."""
    base = rng.standard_normal(shape[:-1] + (2 * shape[-1],)).astype(np.float32)
    view = base[..., ::2]
    assert not view.flags.c_contiguous
    return view


def test_non_contiguous_inputs_give_the_contiguous_results():
    rng = np.random.default_rng(0)
    same = np.testing.assert_array_equal
    x, w, b = _strided(rng, 2, 5, 6, 3), _strided(rng, 4, 3, 3, 3), _strided(rng, 4)
    for method in ("direct", "im2col"):
        same(kernels.conv2d_forward(x, w, b, 1, 1, method=method),
             kernels.conv2d_forward(x.copy(), w.copy(), b.copy(), 1, 1, method=method))
    xb, gamma, beta = _strided(rng, 3, 4, 4, 5), _strided(rng, 5), _strided(rng, 5)
    for got, want in zip(kernels.batchnorm_forward_train(xb, gamma, beta, relu=True),
                         kernels.batchnorm_forward_train(xb.copy(), gamma.copy(), beta.copy(), relu=True),
                         strict=True):
        same(got, want)
    xp = _strided(rng, 2, 6, 6, 3)
    y, argmax = kernels.maxpool_forward(xp, 2, 2)
    y_ref, argmax_ref = kernels.maxpool_forward(xp.copy(), 2, 2)
    same(y, y_ref)
    same(argmax, argmax_ref)
    dy = _strided(rng, *y.shape)
    wide_argmax = np.repeat(argmax_ref, 2, axis=-1)[..., ::2]  # a non-contiguous argmax
    same(kernels.maxpool_backward(dy, wide_argmax, xp.shape), kernels.maxpool_backward(dy.copy(), argmax, xp.shape))
    xr = _strided(rng, 3, 7)
    same(kernels.relu(xr), kernels.relu(xr.copy()))
    samples, centres = _strided(rng, 40, 3), _strided(rng, 5, 3)
    for got, want in zip(kernels.kmeans_assign(samples, centres),
                         kernels.kmeans_assign(samples.copy(), centres.copy()), strict=True):
        same(got, want)


def test_valid_arguments_are_accepted():
    # Python scalars and lists, NumPy integers and integral floats where an integer is taken, wider integer
    # dtypes holding valid codes, float64 kept for gradient checks; an exponent where the sign is 0 is not read
    y = kernels.conv2d_forward(X.astype(np.float64), W, [0.0] * 5, np.int64(1), 1.0)
    assert y.dtype == np.float64 and y.shape == (1, 4, 4, 5)
    assert kernels.int8_conv2d(XQ, np.float32(0.5), WQ, np.ones(1), 1, 1).shape == (1, 4, 4, 3)
    assert kernels.int8_conv2d(XQ.view(np.uint8), 2, WQ.astype(np.int64), [1.0, 2.0, 3.0]).shape == (1, 2, 2, 3)
    codes = np.array([-8, 7, 3], np.int64)
    np.testing.assert_array_equal(kernels.unpack_int4(kernels.pack_int4(codes).view(np.int8), 3), codes)
    np.testing.assert_array_equal(kernels.encode_pow2(np.array([1.0, 0.0, -1.0]), [-8.0, -np.inf, 118.0], -8),
                                  [1, 0, -127])
    assert kernels.segment_sum(z(0, 2), [], 3).shape == (3, 2)
    assert kernels.pow2_csr_matmul([0, 0], [], [], -8, DENSE).shape == (1, 3)
    assert kernels.fixed_point([0.26, -1.0], 0.5, 4.0).tolist() == [0.5, -1.0]
    assert kernels.stochastic_round(G, 0.5, 4, 2**64 - 1).shape == G.shape
    y, argmax = kernels.maxpool_forward(P_X, 2, 2)
    assert kernels.maxpool_backward(P_DY, argmax.astype(np.int64), list(P_X.shape)).shape == P_X.shape
