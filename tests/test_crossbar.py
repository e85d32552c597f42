"""The functional crossbar (issue 17): exact with ideal converters, the converter model against a plain loop,
error falling as ADC bits rise, noise and variation seeded, bad arguments refused."""

import numpy as np
import pytest

from lean.kernels.crossbar import crossbar_matmul


def _codes(rng, n, m, k, wbits=8, ibits=8):
    wmax = 2 ** (wbits - 1) - 1
    return (rng.integers(0, 2 ** ibits, (n, m)), rng.integers(-wmax, wmax + 1, (m, k)))


@pytest.mark.parametrize("signed", ["differential", "offset"])
@pytest.mark.parametrize("xbar_rows,cell_bits,dac_bits", [(128, 4, 1), (16, 2, 2), (7, 1, 3), (300, 3, 8)])
def test_ideal_converters_give_the_exact_integer_product(signed, xbar_rows, cell_bits, dac_bits):
    rng = np.random.default_rng(0)
    x, w = _codes(rng, 5, 150, 9)
    got = crossbar_matmul(x, w, xbar_rows=xbar_rows, cell_bits=cell_bits, dac_bits=dac_bits, signed=signed)
    assert np.array_equal(got, (x @ w).astype(np.float64))


def _reference(x, w, xbar_rows, cell_bits, dac_bits, adc_bits, wbits=8, ibits=8):
    """Element by element: every crossbar, polarity, cell slice and input slice converted by its own ADC."""
    n, m = x.shape
    k = w.shape[1]
    full = xbar_rows * (2 ** dac_bits - 1) * (2 ** cell_bits - 1)
    levels = 2 ** adc_bits - 1
    out = np.zeros((n, k))
    for i in range(n):
        for j in range(k):
            total = 0.0
            for start in range(0, m, xbar_rows):
                for sign in (1, -1):
                    mags = [max(sign * int(v), 0) for v in w[start:start + xbar_rows, j]]
                    for s in range(-(-(wbits - 1) // cell_bits)):
                        for t in range(-(-ibits // dac_bits)):
                            col = sum(((int(a) >> (t * dac_bits)) & (2 ** dac_bits - 1))
                                      * ((g >> (s * cell_bits)) & (2 ** cell_bits - 1))
                                      for a, g in zip(x[i, start:start + xbar_rows], mags, strict=True))
                            q = round(min(col, full) / (full / levels)) * (full / levels)
                            total += sign * q * 2 ** (t * dac_bits + s * cell_bits)
            out[i, j] = total
    return out


def test_the_converter_model_matches_a_plain_loop():
    rng = np.random.default_rng(1)
    x, w = _codes(rng, 3, 20, 4)
    for adc in (3, 5):
        got = crossbar_matmul(x, w, xbar_rows=8, cell_bits=2, dac_bits=2, adc_bits=adc)
        np.testing.assert_allclose(got, _reference(x, w, 8, 2, 2, adc), rtol=1e-9, atol=1e-6)


def test_the_error_falls_as_adc_bits_rise():
    rng = np.random.default_rng(2)
    x, w = _codes(rng, 32, 256, 16)
    exact = (x @ w).astype(np.float64)
    errors = [np.abs(crossbar_matmul(x, w, adc_bits=b) - exact).mean() for b in range(4, 11)]
    assert all(a >= b for a, b in zip(errors, errors[1:], strict=False)) and errors[-1] < errors[0] / 10
    # 128 rows of 1-bit pulses on 4-bit cells sum to at most 1920: an ADC of 11 bits loses nothing
    assert np.array_equal(crossbar_matmul(x, w, adc_bits=11), exact)
    # random 1-bit pulses on random cells sum to about a quarter of that: an 8-bit ADC ranged to 1/4 of the full
    # scale spends its steps there and errs less than one ranged to all of it
    ranged = np.abs(crossbar_matmul(x, w, adc_bits=8, adc_range=0.25) - exact).mean()
    assert ranged < np.abs(crossbar_matmul(x, w, adc_bits=8) - exact).mean()
    # "auto" trims each crossbar's ADC to the largest sum the data produce: never clips, errs no more than 0.25
    for signed in ("differential", "offset"):
        auto = [np.abs(crossbar_matmul(x, w, adc_bits=b, adc_range="auto", signed=signed) - exact).mean()
                for b in (6, 8)]
        fixed = np.abs(crossbar_matmul(x, w, adc_bits=8, adc_range=0.25, signed=signed) - exact).mean()
        assert auto[1] < auto[0] and auto[1] <= fixed


def test_noise_and_variation_are_seeded_and_cost_accuracy():
    rng = np.random.default_rng(3)
    x, w = _codes(rng, 16, 128, 8)
    exact = (x @ w).astype(np.float64)
    a = crossbar_matmul(x, w, read_noise=0.01, variation=0.05, seed=7)
    assert np.array_equal(a, crossbar_matmul(x, w, read_noise=0.01, variation=0.05, seed=7))
    assert not np.array_equal(a, crossbar_matmul(x, w, read_noise=0.01, variation=0.05, seed=8))
    assert np.abs(a - exact).mean() > 0


@pytest.mark.parametrize("kwargs,message", [
    ({"xbar_rows": 0}, "xbar_rows must be an integer >= 1"),
    ({"adc_bits": 0}, "adc_bits must be an integer in"),
    ({"signed": "mirror"}, "signed must be one of"),
    ({"read_noise": -1.0}, "must be >= 0"),
    ({"adc_range": 0.0}, "adc_range must lie in"),
])
def test_bad_arguments_are_refused(kwargs, message):
    x, w = _codes(np.random.default_rng(4), 2, 4, 3)
    with pytest.raises(ValueError, match=message):
        crossbar_matmul(x, w, **kwargs)
    with pytest.raises(ValueError, match="codes must lie in"):
        crossbar_matmul(x - 300, w)
    with pytest.raises(ValueError, match="inner sizes differ"):
        crossbar_matmul(x, w[:3])
    with pytest.raises(ValueError, match="2-D integer array"):
        crossbar_matmul(x.astype(np.float32), w)
