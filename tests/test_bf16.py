"""bf16 products (lean.kernels.bf16, the Winograd kernels' bf16 path, ``--precision bf16``) against NumPy
references that round the same operands, on both instruction paths (AVX-512 BF16 where the CPU has it, and the
FMA emulation every other machine runs) and both vector widths."""

import json
import math

import numpy as np
import pytest
import reference

from lean import kernels
from lean.kernels import bf16, conv, direct, winograd


def _rand(rng, *shape):
    return rng.standard_normal(shape).astype(np.float32)


def _neighbour(bits):
    """The value of a bf16 neighbour's float32 bits; the one past the largest finite bf16 counts as 2^128 (the
    rounding to infinity happens where it would be the nearer)."""
    value = float(np.uint32(bits).view(np.float32))
    return math.copysign(2.0 ** 128, value) if math.isinf(value) else value


def _nearest_bf16_bits(x):
    """Reference rounding, written differently from the kernels: pick the nearer of the two bf16 neighbours
    (ties: the one with an even last bit), from float64 distances."""
    bits = np.asarray(x, np.float32).reshape(-1).view(np.uint32)
    low = bits & np.uint32(0xFFFF0000)
    high = low + np.uint32(0x10000)
    out = np.empty(bits.size, np.uint16)
    for i, (b, lo, hi) in enumerate(zip(bits, low, high, strict=True)):
        value = float(np.uint32(b).view(np.float32))
        if np.isnan(value):
            out[i] = (b >> 16) | 0x40
            continue
        if np.isinf(value):
            out[i] = b >> 16
            continue
        d_lo, d_hi = abs(value - _neighbour(lo)), abs(value - _neighbour(hi))
        if d_lo < d_hi or (d_lo == d_hi and not (lo >> 16) & 1):
            out[i] = lo >> 16
        else:
            out[i] = hi >> 16
    return out.reshape(np.shape(x))


def test_rounding_is_to_nearest_with_ties_to_even_and_keeps_specials():
    rng = np.random.default_rng(0)
    x = np.concatenate([_rand(rng, 5000) * 10.0 ** rng.integers(-30, 30, 5000),
                        np.array([1.0 + 2 ** -8, 1.0 + 3 * 2 ** -8, -(1.0 + 2 ** -8), 0.0, -0.0, np.inf, -np.inf,
                                  np.finfo(np.float32).max, 1e-40, -1e-40], np.float32)]).astype(np.float32)
    expected = _nearest_bf16_bits(x)
    np.testing.assert_array_equal(bf16.round_bits(x), expected)
    # the ties: 1 + 2^-8 lies halfway between 1 and 1 + 2^-7 and goes to 1 (even); 1 + 3 * 2^-8 goes up
    assert bf16.round_to_bf16(np.float32([1.0 + 2 ** -8, 1.0 + 3 * 2 ** -8])).tolist() == [1.0,
                                                                                                    1.0 + 2 ** -6]
    assert bf16.round_to_bf16(np.float32([np.finfo(np.float32).max]))[0] == np.inf
    nans = np.array([0x7F800001, 0xFFFFFFFF, 0x7FC00000, 0xFF800001], np.uint32).view(np.float32)
    assert np.isnan(bf16.round_to_bf16(nans)).all()  # never inf, never zero


@pytest.mark.parametrize("path", ["native", "emulated"])
def test_the_kernels_round_exactly_as_the_reference(path):
    from numba import njit

    from lean.kernels.simd import token

    if path == "native" and not bf16.BF16_AVAILABLE:
        pytest.skip("this CPU has no AVX-512 BF16")

    @njit
    def pack_all(src, dst, vt, bt):  # pack_pairs over the array: rows of 16, in pairs
        for r in range(0, src.size // 16, 2):
            bf16.pack_pairs(src, r * 16, r * 16 + 16, True, dst, r * 16, vt, bt)

    rng = np.random.default_rng(1)
    specials = np.array([0x3F808000, 0x3F818000, 0xBF808000, 0x7F7FFFFF, 0x7F800000, 0xFF800000, 0x7F800001,
                         0x7FFFFFFF, 0xFFFFFFFF, 0x7FC00000, 0x00000000, 0x80000000, 0x3F80FFFF, 0x477FFF80],
                        np.uint32).view(np.float32)
    scaled = (_rand(rng, 1024 - specials.size) * 10.0 ** rng.integers(-20, 20, 1010)).astype(np.float32)
    x = np.concatenate([specials, scaled])
    dst = np.empty(x.size, np.uint16)
    pack_all(x, dst, token(16), token(2 if path == "native" else 1))
    rows = x.reshape(-1, 2, 16)  # pack_pairs interleaves row 2r and row 2r + 1
    expected = np.stack([bf16.round_bits(rows[:, 0]), bf16.round_bits(rows[:, 1])], axis=-1).reshape(-1)
    nan = np.isnan(bf16.values(expected))
    np.testing.assert_array_equal(dst[~nan], expected[~nan])
    assert np.isnan(bf16.values(dst[nan])).all()  # a NaN stays a NaN (its payload bits may differ)
    assert nan.sum() == 4


def _winograd_bf16_reference(x, w, bias, padding, m=4):
    """F(m x m, 3 x 3) with V and U rounded to bf16 as float32 values, the products and sums in float64."""
    bt, g, at = (t.astype(np.float64) for t in winograd.TRANSFORMS[m])
    a = m + 2
    n, h, wd, c = x.shape
    k = w.shape[0]
    oh, ow = h + 2 * padding - 2, wd + 2 * padding - 2
    th, tw = -(-oh // m), -(-ow // m)
    xp = np.zeros((n, th * m + 2, tw * m + 2, c), np.float32)
    xp[:, padding:padding + h, padding:padding + wd] = x
    u = np.einsum("ab,kcbd,ed->aeck", g, w.astype(np.float64), g).astype(np.float32)
    u = bf16.round_to_bf16(u).astype(np.float64)
    y = np.zeros((n, th * m, tw * m, k))
    for ty in range(th):
        for tx in range(tw):
            d = xp[:, ty * m:ty * m + a, tx * m:tx * m + a].astype(np.float64)  # (n, a, a, c)
            v = np.einsum("ab,nbdc,ed->naec", bt, d, bt).astype(np.float32)
            v = bf16.round_to_bf16(v).astype(np.float64)
            mm = np.einsum("naec,aeck->naek", v, u)
            y[:, ty * m:(ty + 1) * m, tx * m:(tx + 1) * m] = np.einsum("ia,naek,je->nijk", at, mm, at)
    out = y[:, :oh, :ow]
    return out + (0 if bias is None else bias)


def _weight_grad_bf16_reference(x, dy, padding, m=4):
    """dW of F(m x m, 3 x 3) with V = B^T d B and dM = A dY A^T rounded to bf16, sums in float64."""
    bt, g, at = (t.astype(np.float64) for t in winograd.TRANSFORMS[m])
    a = m + 2
    n, h, wd, c = x.shape
    _, oh, ow, k = dy.shape
    th, tw = -(-oh // m), -(-ow // m)
    xp = np.zeros((n, th * m + 2, tw * m + 2, c), np.float32)
    xp[:, padding:padding + h, padding:padding + wd] = x
    dyp = np.zeros((n, th * m, tw * m, k), np.float32)
    dyp[:, :oh, :ow] = dy
    du = np.zeros((a, a, c, k))
    for ty in range(th):
        for tx in range(tw):
            d = xp[:, ty * m:ty * m + a, tx * m:tx * m + a].astype(np.float64)
            v = bf16.round_to_bf16(np.einsum("ab,nbdc,ed->naec", bt, d, bt).astype(np.float32))
            e = dyp[:, ty * m:(ty + 1) * m, tx * m:(tx + 1) * m].astype(np.float64)
            dm = bf16.round_to_bf16(np.einsum("ia,nijk,je->naek", at, e, at).astype(np.float32))
            du += np.einsum("naec,naek->aeck", v.astype(np.float64), dm.astype(np.float64))
    dg = np.einsum("ai,aeck,ej->kcij", g, du, g)
    return dg


@pytest.fixture(params=["native", "emulated"])
def instructions(request, monkeypatch):
    if request.param == "native" and not bf16.BF16_AVAILABLE:
        pytest.skip("this CPU has no AVX-512 BF16")
    if request.param == "emulated":
        monkeypatch.setattr(bf16, "BF16_AVAILABLE", False)
    return request.param


CASES = [
    # n, h, w, c, k, padding: outputs not multiples of the tile, c != k, paddings 0..2
    (2, 8, 8, 16, 16, 1),
    (3, 7, 9, 8, 24, 1),
    (1, 9, 5, 16, 8, 0),
    (2, 6, 6, 24, 16, 2),
    (1, 5, 13, 64, 32, 1),
]


@pytest.mark.parametrize("lanes", [16, 8])
@pytest.mark.parametrize("n,h,w,c,k,padding", CASES)
def test_bf16_winograd_forward_computes_the_rounded_operands_products(instructions, lanes, n, h, w, c, k, padding):
    rng = np.random.default_rng(n * 100 + h * 10 + c + k)
    x, wt, b = _rand(rng, n, h, w, c), _rand(rng, k, c, 3, 3) * 0.3, _rand(rng, k)
    y = winograd.forward(x, wt, b, padding, width=lanes, precision="bf16")
    expected = _winograd_bf16_reference(x, wt, b, padding)
    exact = reference.conv2d(x, wt, b, 1, padding)
    scale = np.abs(exact).max()
    # the kernel's float32 transforms may round an operand to the other bf16 neighbour now and then
    assert np.abs(y - expected).max() <= 2e-3 * scale
    error = np.sqrt(((y - exact) ** 2).mean() / (exact ** 2).mean())
    assert 1e-3 < error < 6e-2  # bf16 was used (float32 would be ~1e-6), and no more error than bf16's


@pytest.mark.parametrize("lanes", [16, 8])
@pytest.mark.parametrize("n,h,w,c,k,padding", CASES[:4])
def test_bf16_gradients_compute_the_rounded_operands_products(instructions, lanes, n, h, w, c, k, padding,
                                                              monkeypatch):
    monkeypatch.setattr(direct, "SIMD_WIDTH", lanes)
    rng = np.random.default_rng(n + h + w + c + k)
    x, wt = _rand(rng, n, h, w, c), _rand(rng, k, c, 3, 3) * 0.3
    oh, ow = h + 2 * padding - 2, w + 2 * padding - 2
    dy = _rand(rng, n, oh, ow, k)
    expected_dw = _weight_grad_bf16_reference(x, dy, padding)
    # the input gradient is the forward kernel on dy (flipped filters): the forward's reference
    flipped = np.ascontiguousarray(wt[:, :, ::-1, ::-1].transpose(1, 0, 2, 3))
    expected_dx = _winograd_bf16_reference(dy, flipped, None, 2 - padding)
    dx, dw, _ = kernels.conv2d_backward(x, wt, dy, 1, padding, method="winograd", precision="bf16")
    rdx, rdw, _ = reference.conv2d_grads(x, wt, dy, 1, padding)
    assert np.abs(dx - expected_dx).max() <= 2e-3 * np.abs(rdx).max()
    assert np.abs(dw - expected_dw).max() <= 2e-3 * np.abs(rdw).max()
    for rows in (1, 2):  # blocks of one or two grid rows: odd tile counts pad the last pair with zeros
        np.testing.assert_allclose(winograd.weight_grad(x, dy, padding, width=lanes, rows=rows, precision="bf16"),
                                   dw, rtol=1e-4, atol=1e-5 * np.abs(rdw).max())
    for got, exact in ((dx, rdx), (dw, rdw)):
        error = np.sqrt(((got - exact) ** 2).mean() / (exact ** 2).mean())
        assert 1e-3 < error < 6e-2  # bf16 was used, and no more error than bf16's


def test_both_instruction_paths_agree(monkeypatch):
    if not bf16.BF16_AVAILABLE:
        pytest.skip("this CPU has no AVX-512 BF16")
    rng = np.random.default_rng(3)
    x, wt = _rand(rng, 2, 12, 10, 32), _rand(rng, 48, 32, 3, 3) * 0.3
    dy = _rand(rng, 2, 12, 10, 48)
    native = (winograd.forward(x, wt, None, 1, precision="bf16"), winograd.weight_grad(x, dy, 1, precision="bf16"))
    monkeypatch.setattr(bf16, "BF16_AVAILABLE", False)
    emulated = (winograd.forward(x, wt, None, 1, precision="bf16"), winograd.weight_grad(x, dy, 1, precision="bf16"))
    for a, b in zip(native, emulated, strict=True):  # the same products; the sums' order and denormals differ
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5 * np.abs(b).max())


def test_bf16_results_are_deterministic_and_nan_propagates():
    rng = np.random.default_rng(4)
    x, wt = _rand(rng, 2, 9, 9, 16), _rand(rng, 16, 16, 3, 3)
    dy = _rand(rng, 2, 9, 9, 16)
    first = winograd.forward(x, wt, None, 1, precision="bf16"), winograd.weight_grad(x, dy, 1, precision="bf16")
    again = winograd.forward(x, wt, None, 1, precision="bf16"), winograd.weight_grad(x, dy, 1, precision="bf16")
    for a, b in zip(first, again, strict=True):
        np.testing.assert_array_equal(a, b)
    x[1, 4, 4, 3] = np.nan
    y = winograd.forward(x, wt, None, 1, precision="bf16")
    assert np.isnan(y[1, 3:6, 3:6]).all() and not np.isnan(y[0]).any()  # a diverging run is seen


def test_other_methods_run_float32_and_unknown_precisions_are_refused():
    rng = np.random.default_rng(5)
    x, wt = _rand(rng, 1, 8, 8, 16), _rand(rng, 16, 16, 3, 3)
    for method in ("tiled", "im2col"):
        np.testing.assert_array_equal(kernels.conv2d_forward(x, wt, None, 2, 1, method=method, precision="bf16"),
                                      kernels.conv2d_forward(x, wt, None, 2, 1, method=method))
    assert "winograd" in conv.BF16_METHODS
    with pytest.raises(ValueError, match="precision must be one of float32, bf16"):
        kernels.conv2d_forward(x, wt, None, 1, 1, precision="fp16")
    with pytest.raises(ValueError, match="precision"):
        kernels.conv2d_backward(x, wt, np.zeros((1, 8, 8, 16), np.float32), 1, 1, precision="half")


def test_precision_bf16_trains_deterministically_and_says_which_layers_ran_bf16(tmp_path):
    from lean.nn import load_model
    from lean.train import TrainConfig
    from lean.train.config import PrecisionConfig
    from lean.train.run import resume, start

    def config(precision):
        return TrainConfig(net="resnet8", data="digits", epochs=2, batch_size=64, seed=1, width=0.5,
                           methods=(PrecisionConfig(precision),))

    bf = start(config("bf16"), out=tmp_path / "a.h5")
    again = start(config("bf16"), out=tmp_path / "b.h5")
    assert bf["precision"] == "bf16" and 0 < bf["bf16_layers"] < bf["conv_layers"]  # not the first, not strided
    assert bf["bf16_products"] == ("vdpbf16ps" if bf16.BF16_AVAILABLE else "emulated")
    assert any(label.startswith("bfloat16") for label in bf["energy"]["by_precision"])
    weights, weights_again = load_model(tmp_path / "a.h5").parameters(), load_model(tmp_path / "b.h5").parameters()
    for name, array in weights.items():  # same seed, same threads: the same weights
        np.testing.assert_array_equal(array, weights_again[name])
    assert np.isfinite(bf["train_loss"]) and bf["test_accuracy"] > 0.3  # 10 classes: it learns
    assert bf["test_accuracy"] == again["test_accuracy"]
    # --precision float32 is the default: no method, no trace in the checkpoint
    assert config("float32").methods == ()
    resumed = resume(tmp_path / "a.h5", epochs=3)  # a bf16 run resumes in bf16
    assert resumed["precision"] == "bf16" and resumed["epochs"] == 3


def test_the_command_says_when_bf16_changes_nothing_and_refuses_unknown_formats(tmp_path, monkeypatch):
    from click.testing import CliRunner

    from lean.cli import main

    monkeypatch.chdir(tmp_path)
    runner = CliRunner()
    r = runner.invoke(main, ["train", "--net", "lenet5", "--data", "digits", "--epochs", "1", "--precision", "bf16",
                             "--out", "l.h5"])
    assert r.exit_code == 0
    assert "warning: --precision bf16: no conv layer of this net runs on a kernel with bf16 products" in r.output
    assert "bf16 products" in r.output and "on 0 of 2 conv layers" in r.output
    r = runner.invoke(main, ["train", "--net", "lenet5", "--data", "digits", "--precision", "fp16"])
    assert r.exit_code != 0 and "error: Invalid value for '--precision': 'fp16' is not one of" in r.output
    assert "Traceback" not in r.output
    r = runner.invoke(main, ["bench", "train", "--net", "resnet8", "--input", "1,8,8", "--batch-size", "16",
                             "--steps", "1", "--warmup", "0", "--precision", "bf16", "--json"])
    assert r.exit_code == 0 and json.loads(r.output.strip().splitlines()[-1])["precision"] == "bf16"
    # --precision float32 is every run's arithmetic: a resumed float32 run accepts it, and refuses bf16
    assert runner.invoke(main, ["train", "--net", "lenet5", "--data", "digits", "--epochs", "1", "--out",
                                "f.h5"]).exit_code == 0
    assert runner.invoke(main, ["train", "--resume", "f.h5", "--epochs", "2", "--precision", "float32"]).exit_code == 0
    r = runner.invoke(main, ["train", "--resume", "f.h5", "--epochs", "3", "--precision", "bf16"])
    assert r.exit_code != 0 and "f.h5 was trained without it" in r.output
