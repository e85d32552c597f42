"""E2-Train: PSG kernels vs NumPy references, the skip gate's hand-written gradients, SMD, and the energy meter."""

from types import SimpleNamespace

import numpy as np
import pytest
from gradcheck import central_difference as _central_difference
from gradcheck import to_float64

from lean import kernels
from lean.data import load as load_data
from lean.errors import LeanError
from lean.nets import build
from lean.nn import Conv2d, GateController, GatedResidual, Linear, Model, Sequential
from lean.train import SMDConfig, TrainConfig, Trainer
from lean.train.e2train import PredictiveSignGradient, add_skip_gates, predicted_sign_agreement
from lean.train.energy import EnergyMeter, LayerPrecision, mac_energy_pj

# ----------------------------------------------------------------------------------------- PSG kernels


@pytest.mark.parametrize("shape", [(1,), (7, 3), (3, 5, 5, 2), (40000,)])
def test_fixed_point_and_msb_predictor_match_numpy(shape):
    rng = np.random.default_rng(1)
    x = rng.standard_normal(shape).astype(np.float32) * 3
    step = float(np.abs(x).max()) / 127
    codes = np.clip(np.floor(x / step + 0.5), -127, 127)
    np.testing.assert_allclose(kernels.fixed_point(x, step, 8), codes * step, rtol=1e-6)
    msb = np.sign(codes) * np.floor(np.abs(codes) / 16) * 16  # keep 4 of 8 bits: magnitude truncated
    np.testing.assert_allclose(kernels.msb_predictor(x, step, 8, 4), msb * step, rtol=1e-6)
    # non-contiguous input
    if len(shape) > 1:
        view = x[::2]
        np.testing.assert_allclose(kernels.fixed_point(view, step, 8),
                                   np.clip(np.floor(view / step + 0.5), -127, 127) * step, rtol=1e-6)


def test_stochastic_round_is_on_the_grid_unbiased_and_reproducible():
    x = np.full(200000, 0.3, np.float32)  # 0.3 steps above a grid point: rounds up 30% of the time
    out = kernels.stochastic_round(x, 1.0, 16, seed=5)
    assert set(np.unique(out)) == {0.0, 1.0}
    assert abs(out.mean() - 0.3) < 0.005
    np.testing.assert_array_equal(out, kernels.stochastic_round(x, 1.0, 16, seed=5))
    assert not np.array_equal(out, kernels.stochastic_round(x, 1.0, 16, seed=6))
    big = kernels.stochastic_round(np.array([1e9, -1e9], np.float32), 1.0, 8, seed=0)
    np.testing.assert_array_equal(big, [127, -127])  # clipped to the 8-bit range


def test_sign_select_uses_prediction_above_tau_and_falls_back_below():
    pred = np.array([0.5, -0.2, 0.01, -0.01, 0.0], np.float32)
    accurate = np.array([-1.0, 1.0, -0.3, 0.4, 0.0], np.float32)
    signs, fell_back = kernels.sign_select(pred, accurate, 0.1)
    np.testing.assert_array_equal(signs, [1, -1, -1, 1, 0])
    assert fell_back == 3
    with pytest.raises(ValueError, match="shape"):
        kernels.sign_select(pred, accurate[:2], 0.1)
    with pytest.raises(ValueError, match="bits"):
        kernels.fixed_point(pred, 0.1, 40)


def test_psg_predicted_sign_matches_full_precision_on_most_entries():
    rng = np.random.default_rng(3)
    x = np.maximum(rng.standard_normal((8, 10, 10, 16)), 0).astype(np.float32)  # post-ReLU activations
    w = (rng.standard_normal((16, 16, 3, 3)) * 0.1).astype(np.float32)
    dy = rng.standard_normal((8, 10, 10, 16)).astype(np.float32) * 1e-3
    agreement, predicted, exact = predicted_sign_agreement(x, w, dy, 1, 1)
    assert agreement > 0.8
    # where the prediction is large its sign is almost always right; the small ones are where PSG falls back
    big = np.abs(predicted) >= 0.5 * np.abs(predicted).mean()
    assert np.mean(np.sign(predicted[big]) == np.sign(exact[big])) > 0.95
    tau = float(np.quantile(np.abs(predicted), 0.3))
    signs, fell_back = kernels.sign_select(predicted, exact, tau)
    assert fell_back == int((np.abs(predicted) < tau).sum())
    assert np.mean(signs == np.sign(exact)) > agreement  # falling back only helps


def _psg_step(update, tau=None, tau_rel=None, bias=True):
    """One backward of a conv layer under PSG: (layer, method)."""
    rng = np.random.default_rng(7)
    layer = Conv2d(16, 16, 3, padding=1, bias=bias)
    layer.params["weight"][...] = rng.standard_normal((16, 16, 3, 3)).astype(np.float32) * 0.1
    model = Model(Sequential([("conv", layer)]), input_shape=(8, 8, 16), num_classes=16)
    method = PredictiveSignGradient(tau=tau, tau_rel=tau_rel, update=update)
    method.install(model)
    x = np.maximum(rng.standard_normal((4, 8, 8, 16)), 0).astype(np.float32)
    dy = rng.standard_normal((4, 8, 8, 16)).astype(np.float32) * 1e-3
    layer.forward(x, train=True)
    layer.backward(dy)
    method.uninstall()
    return layer, method


def test_psg_update_is_the_authors_bare_sign_and_falls_back_more_as_tau_grows():
    layer, method = _psg_step("sign", tau=0.0)
    g = layer.grads["weight"]
    assert set(np.unique(g)) <= {-1.0, 0.0, 1.0} and np.abs(g).sum() > 0.9 * g.size  # a bare sign, size 1
    assert set(np.unique(layer.grads["bias"])) <= {-1.0, 0.0, 1.0}
    assert method.fallback["conv"] == 0.0  # tau = 0: every weight takes the predictor's sign
    shares = [_psg_step("sign", tau_rel=t)[1].fallback["conv"] for t in (0.0, 0.01, 0.1, 0.5, 1.0)]
    assert shares == sorted(shares) and shares[0] == 0.0 and shares[-1] > 0.9  # the fallback share moves with tau
    scaled, _ = _psg_step("scaled", tau=0.0)
    magnitudes = np.unique(np.abs(scaled.grads["weight"]))
    assert len(magnitudes[magnitudes > 0]) == 1 and magnitudes.max() < 1.0  # one step size, the mean |prediction|
    np.testing.assert_array_equal(np.sign(scaled.grads["weight"]), g)  # the same signs either way


# ----------------------------------------------------------------------------------------- SLU gate




def test_gate_controller_backprop_through_time_matches_central_differences():
    ctrl = GateController(hidden=4, seed=2)
    to_float64(ctrl)
    rng = np.random.default_rng(0)
    zs = [rng.standard_normal((3, 4)) for _ in range(3)]
    weights = [rng.standard_normal(3) for _ in range(3)]

    def loss():
        ctrl.forward(np.zeros((3, 1, 1, 1)), train=True)
        return sum(float((ctrl.step(z) * a).sum()) for z, a in zip(zs, weights, strict=True))

    loss()
    ctrl.zero_grad()
    dzs = []
    for t in reversed(range(3)):
        dzs.insert(0, ctrl.backward_step(weights[t]))
    for name, p in ctrl.params.items():
        for idx in list(np.ndindex(p.shape))[:12]:
            np.testing.assert_allclose(ctrl.grads[name][idx], _central_difference(loss, p, idx), rtol=1e-5,
                                       atol=1e-8, err_msg=f"{name}{idx}")
    for t in range(3):
        for idx in [(0, 0), (2, 3), (1, 1)]:
            np.testing.assert_allclose(dzs[t][idx], _central_difference(loss, zs[t], idx), rtol=1e-5, atol=1e-8)


def test_gated_block_gradients_equal_the_soft_gate_when_every_image_runs():
    """With every image kept and no cost term, the straight-through gradients of the gate's parameters are
    the exact gradients of the soft-gated block y = x + prob * (block(x) - x)."""
    model = add_skip_gates(build("resnet8", input_shape=(6, 6, 1), num_classes=3), beta=0.0)
    net = model.net
    to_float64(net)
    ctrl = net["gate"]
    ctrl.params["b_out"][0] = 30.0  # prob ~ 1 in the sampling: every image runs
    gated = next(m for m in net.modules() if isinstance(m, GatedResidual))
    rng = np.random.default_rng(1)
    x = rng.standard_normal((4, 6, 6, 16))
    dy = rng.standard_normal((4, 6, 6, 16))

    def soft_loss():
        ctrl.forward(x, train=False)
        pooled = x.mean(axis=(1, 2))
        prob = ctrl.step(pooled @ gated.params["proj_weight"].T + gated.params["proj_bias"])
        block_out = gated.block.forward(x, train=True)
        return float((dy * (x + prob[:, None, None, None] * (block_out - x))).sum())

    ctrl.params["b_out"][0] = 0.3  # a prob well inside (0, 1) for the soft loss...
    ctrl.forward(x, train=True)
    gated.rng = SimpleNamespace(random=np.zeros)  # ...while the sampler is forced to keep every image
    gated.forward(x, train=True)
    net.zero_grad()
    gated.backward(dy.copy())
    for module, name in [(gated, "proj_weight"), (gated, "proj_bias"), (ctrl, "w_x"), (ctrl, "b_out")]:
        p = module.params[name]
        for idx in list(np.ndindex(p.shape))[:6]:
            np.testing.assert_allclose(module.grads[name][idx], _central_difference(soft_loss, p, idx), rtol=1e-4,
                                       atol=1e-7, err_msg=f"{name}{idx}")


def test_skip_gates_copy_the_weights_run_kept_images_only_and_round_trip():
    base = build("resnet14", input_shape=(8, 8, 1), num_classes=4)
    gated = add_skip_gates(base, target=0.5)
    assert sum(isinstance(m, GatedResidual) for m in gated.net.modules()) == 4  # 6 blocks, 2 change shape
    x = np.random.default_rng(0).standard_normal((6, 8, 8, 1)).astype(np.float32)
    gated.net["gate"].params["b_out"][0] = 30.0  # every block runs: the gated model is the base model
    np.testing.assert_allclose(gated.forward(x), base.forward(x), rtol=1e-5, atol=1e-5)
    gated.net["gate"].params["b_out"][0] = -30.0  # no gated block runs: they are identities
    y_skip = gated.forward(x)
    assert not np.allclose(y_skip, base.forward(x))
    clone = Model.from_config(gated.config())
    clone.load_state(gated.state())
    np.testing.assert_allclose(clone.forward(x), y_skip, rtol=1e-6)
    with pytest.raises(ValueError, match="no identity residual"):
        add_skip_gates(build("lenet5", input_shape=(28, 28, 1), num_classes=10))
    with pytest.raises(ValueError, match="target"):
        GateController(target=0.0)


# ----------------------------------------------------------------------------------------- energy


def test_energy_of_a_hand_computable_run():
    """One training step of a 1-layer linear net with known sizes, counted and costed by hand."""
    net = Sequential([("fc", Linear(4, 3, bias=False))])
    model = Model(net, (1, 1, 4), 3, "tiny")

    meter = EnergyMeter(model).install()
    layer = net["fc"]
    x = np.ones((2, 4), np.float32)
    y = layer.forward(x, train=True)
    layer.backward(np.ones_like(y))
    meter.optimizer_step(model.num_parameters(), 1)
    report = meter.report()
    macs = 2 * 4 * 3  # n * in * out, once forward and once for the weight gradient (its dx is computed too)
    assert report["macs"] == 3 * macs
    assert report["arithmetic_j"] == pytest.approx(3 * macs * (3.7 + 0.9) * 1e-12)
    sram_bits = (8 * 32 + 12 * 32 + 6 * 32) + (6 * 32 + 8 * 32 + 12 * 32) + (12 * 32 + 8 * 32)
    assert report["sram_j"] == pytest.approx(sram_bits * 5.0 / 32 * 1e-12)
    assert report["dram_j"] == pytest.approx(12 * 32 * 5 * 640.0 / 32 * 1e-12)
    assert report["training_energy_j"] == pytest.approx(report["arithmetic_j"] + report["sram_j"]
                                                        + report["dram_j"])
    assert mac_energy_pj(("int", 8), ("int", 8)) == pytest.approx(0.2 + 0.1)
    assert mac_energy_pj(("int", 4), ("int", 16)) == pytest.approx(0.2 + 0.1)
    assert LayerPrecision().forward == (("float", 32), ("float", 32))
    with pytest.raises(ValueError, match="known"):
        EnergyMeter(model, tech="7nm")


def _digits_trainer(**config):
    ds = load_data("digits")
    model = build("resnet8", input_shape=ds.input_shape, num_classes=ds.num_classes)
    return ds, model, TrainConfig(net="resnet8", data="digits", epochs=1, batch_size=64, lr=0.05, **config)


def test_smd_skips_steps_and_halves_the_energy():
    ds, model, cfg = _digits_trainer()
    full = Trainer(model, ds, cfg)
    full.run()
    ds, model, cfg = _digits_trainer(methods=(SMDConfig(0.5),))
    dropped = Trainer(model, ds, cfg)
    dropped.run()
    steps = full.steps_per_epoch()
    assert 0.25 * steps < dropped.skipped_steps < 0.75 * steps
    ratio = dropped.energy.report()["training_energy_j"] / full.energy.report()["training_energy_j"]
    assert ratio == pytest.approx(1 - dropped.skipped_steps / steps, abs=0.02)
    with pytest.raises(ValueError, match="--smd"):
        SMDConfig(1.0)


def test_smd_dropped_steps_move_the_weights_by_momentum_only_when_asked():
    # the authors' SMD runs the optimizer on zero gradients at a dropped step: with momentum (or weight decay)
    # the weights still move and the run differs from skipping; without either the step changes nothing
    def weights(dropped, **config):
        ds, model, cfg = _digits_trainer(methods=(SMDConfig(0.5, dropped),), train_limit=640, **config)
        trainer = Trainer(model, ds, cfg)
        trainer.run()
        return np.concatenate([v.ravel() for v in trainer.model.parameters().values()]), trainer.energy.report()

    skip, skip_energy = weights("skip")
    momentum, momentum_energy = weights("momentum")
    assert not np.allclose(skip, momentum)
    assert momentum_energy["macs"] == skip_energy["macs"]  # a zero-gradient step multiplies nothing
    plain_skip, _ = weights("skip", momentum=0.0, weight_decay=0.0)
    plain_momentum, _ = weights("momentum", momentum=0.0, weight_decay=0.0)
    np.testing.assert_array_equal(plain_skip, plain_momentum)
    with pytest.raises(ValueError, match="dropped"):
        SMDConfig(0.5, "backprop")


def test_psg_and_slu_runs_train_and_cost_less():
    ds, model, cfg = _digits_trainer()
    base = Trainer(model, ds, cfg)
    base.run()
    ds, model, cfg = _digits_trainer()
    psg = PredictiveSignGradient(tau_rel=0.05)
    run = Trainer(model, ds, cfg, methods=[psg])
    history = run.run()
    assert history[-1]["test_accuracy"] > 0.5
    assert 0 < np.mean(list(psg.fallback.values())) < 1
    by = run.energy.report()["by_precision"]
    assert any(k.startswith("int8") for k in by) and any("int4" in k for k in by)
    assert run.energy.report()["arithmetic_j"] < 0.3 * base.energy.report()["arithmetic_j"]
    ds, model, cfg = _digits_trainer()
    gated = add_skip_gates(model, target=0.5)
    slu = Trainer(gated, ds, cfg)
    slu.run()
    assert slu.energy.report()["macs"] < base.energy.report()["macs"]
    for layer in (m for m in model.net.modules() if isinstance(m, Conv2d)):
        assert layer.operand_hook is None and not layer.observers  # the plain model was not changed


def test_psg_control_runs_psgs_operands_with_exact_gradients():
    from lean.train.config import LowPrecisionConfig

    method = LowPrecisionConfig(8, 16, True).build()
    assert method.layer_types == (Conv2d,) and (method.bits, method.gradient_bits) == (8, 16)
    rng = np.random.default_rng(8)
    layer = Conv2d(8, 8, 3, padding=1)
    layer.params["weight"][...] = rng.standard_normal((8, 8, 3, 3)).astype(np.float32) * 0.1
    model = Model(Sequential([("conv", layer)]), input_shape=(6, 6, 8), num_classes=8)
    method.install(model)
    x = rng.standard_normal((2, 6, 6, 8)).astype(np.float32)
    dy = rng.standard_normal((2, 6, 6, 8)).astype(np.float32)
    layer.forward(x, train=True)
    layer.backward(dy)
    precision = layer.operand_hook.precision(layer)
    assert precision.forward == (("int", 8), ("int", 8)) and precision.grad_weight == (("int", 16), ("int", 8))
    method.uninstall()
    exact = kernels.conv2d_backward(x, layer.params["weight"], dy, 1, 1)[1]
    g = layer.grads["weight"]
    assert len(np.unique(np.abs(g))) > 100  # a gradient, not a sign
    assert np.corrcoef(g.ravel(), exact.ravel())[0, 1] > 0.99  # 8-bit operands: close to the exact gradient
    with pytest.raises(LeanError, match="must be 2<=x<=16|gradient bits"):
        LowPrecisionConfig(8, 40, True)
