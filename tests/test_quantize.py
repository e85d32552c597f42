"""Property tests of the quantizers: on the grid, error within half a step, powers of two exact."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from lean.compress.quantize import (
    exponent_range,
    fake_quantize,
    pow2_round,
    pow2_value,
    quantize_pow2,
    quantize_uniform,
)

finite = st.floats(min_value=-1e3, max_value=1e3, allow_nan=False, width=32)
tensors = arrays(np.float32, st.tuples(st.integers(1, 6), st.integers(1, 7)), elements=finite)


@settings(max_examples=150, deadline=None)
@given(x=tensors, bits=st.integers(2, 12), per_channel=st.booleans())
def test_symmetric_uniform_is_on_grid_and_within_half_a_step(x, bits, per_channel):
    q = quantize_uniform(x, bits, symmetric=True, axis=0 if per_channel else None)
    xq = q.dequantize()
    scale = q.scale.reshape(-1, 1) if per_channel else q.scale
    steps = xq / scale
    np.testing.assert_allclose(steps, np.rint(steps), atol=1e-3)          # on the grid
    assert np.all(np.abs(q.codes) <= 2 ** (bits - 1) - 1)
    assert np.all(np.abs(xq - x) <= scale / 2 + 1e-5 * (1 + np.abs(x)))   # max|x| is representable
    assert np.all(xq[x == 0] == 0)                                          # zero is exact


@settings(max_examples=150, deadline=None)
@given(x=tensors, bits=st.integers(2, 12))
def test_asymmetric_uniform_is_within_half_a_step(x, bits):
    q = quantize_uniform(x, bits, symmetric=False)
    xq = q.dequantize()
    assert q.codes.min() >= 0 and q.codes.max() <= 2 ** bits - 1
    assert np.all(np.abs(xq - x) <= q.scale / 2 * (1 + 1e-3) + 1e-5 * (1 + np.abs(x)))


@settings(max_examples=200, deadline=None)
@given(x=arrays(np.float32, st.integers(1, 50), elements=finite), e_max=st.integers(-4, 8),
       e_bits=st.integers(2, 5))
def test_pow2_rounding_is_exact_nearest_and_in_range(x, e_max, e_bits):
    sign, exponent = pow2_round(x, e_max, e_bits)
    v = pow2_value(sign, exponent).astype(np.float64)
    e_min, _ = exponent_range(e_max, e_bits)
    nz = sign != 0
    mant, _ = np.frexp(np.abs(v[nz]))
    assert np.all(mant == 0.5)                                   # exact powers of two
    assert np.all((exponent[nz] >= e_min) & (exponent[nz] <= e_max))
    assert np.all(np.sign(v[nz]) == np.sign(x[nz]))
    # nearest among the representable powers (and zero), in the linear domain (ties either way)
    grid = np.concatenate([[0.0], np.exp2(np.arange(e_min, e_max + 1))])
    mag = np.abs(x.astype(np.float64))
    nearest = np.abs(mag[:, None] - grid[None, :]).min(axis=1)
    np.testing.assert_allclose(np.abs(mag - np.abs(v)), nearest, rtol=1e-12, atol=1e-12)


def test_pow2_midpoint_and_examples():
    x = np.array([1.5, 1.49, 3.0, -0.75, 40.0, 0.0, 1e-9], np.float32)
    np.testing.assert_array_equal(quantize_pow2(x, max_exponent=5, exponent_bits=4),
                                  [2.0, 1.0, 4.0, -1.0, 32.0, 0.0, 0.0])


def test_fake_quantize_straight_through_mask():
    x = np.array([[-3.0, -1.0, 0.0, 0.5, 2.0]], np.float32)
    xq, mask = fake_quantize(x, bits=4)
    assert mask.tolist() == [[1, 1, 1, 1, 1]]  # symmetric range covers max|x|
    xq, mask = fake_quantize(x, bits=4, symmetric=False)
    assert mask.min() == 1.0 and np.abs(xq - x).max() <= 5.0 / 15 / 2 + 1e-6


def test_fake_quantize_clips_beyond_its_limit_and_passes_no_gradient_there():
    x = np.array([[-3.0, -1.0, 0.0, 0.55, 2.0]], np.float32)
    xq, mask = fake_quantize(x, bits=4, limit=1.4)  # step 0.2: codes -7..7
    assert mask.tolist() == [[0, 1, 1, 1, 0]]
    np.testing.assert_allclose(xq, [[-1.4, -1.0, 0.0, 0.6, 1.4]], atol=1e-6)
    xq, mask = fake_quantize(np.array([[2.0, 2.0], [0.5, -3.0]], np.float32), bits=8, axis=0, limit=[1.0, 4.0])
    assert mask.tolist() == [[0, 0], [1, 1]]
    with pytest.raises(ValueError, match="limit"):
        fake_quantize(x, bits=4, symmetric=False, limit=1.0)


def test_layer_input_quantizer_clips_a_batch_beyond_its_running_range():
    """In training the input range is a moving average of each batch's max|x|; an outlier above it is clipped
    and its gradient is zero (it would pass, unclipped, if the range jumped to every batch's max)."""
    from lean.nn import Linear

    layer = Linear(3, 1, bias=False).set_input_bits(8)
    layer.params["weight"][:] = [[1.0, 2.0, 3.0]]
    ones = np.ones((4, 3), np.float32)
    for _ in range(3):
        layer.forward(ones, train=True)
    assert layer.buffers["input_scale"][0] == pytest.approx(1.0)
    outlier = np.array([[0.5, 10.0, -0.25]], np.float32)
    y = layer.forward(outlier, train=True)
    limit = 0.9 * 1.0 + 0.1 * 10.0  # the range after this batch: 1.9
    step = limit / 127
    clipped = np.rint(np.clip(outlier, -limit, limit) / step) * step
    np.testing.assert_allclose(y, clipped @ layer.params["weight"].T, rtol=1e-5)
    dx = layer.backward(np.ones((1, 1), np.float32))
    np.testing.assert_array_equal(dx, [[1.0, 0.0, 3.0]])


def test_bad_bits():
    with pytest.raises(ValueError, match="bits"):
        quantize_uniform(np.ones(3), bits=1)
    with pytest.raises(ValueError, match="axis 0"):
        quantize_uniform(np.ones((2, 3)), bits=4, axis=1)
