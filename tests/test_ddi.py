"""Dual dynamic inference: forced masks against the narrowed network, skipped blocks against their shortcut, the
gates' and exits' hand-written gradients, budgeted halting that never exceeds its budget, training, resume,
recording and the command."""

import json

import numpy as np
import pytest
from gradcheck import central_difference, check_module, to_float64

from lean.data import load
from lean.dynamic import DDIConfig, add_ddi_gates, budgeted_predict, ddi_blocks, exit_heads
from lean.dynamic.ddi import ChannelGate, ChannelGatedBlock, HaltingPlan, controller
from lean.errors import ConfigError, TrainingInterrupted
from lean.hw.workload import from_checkpoint
from lean.nets import build
from lean.nn import BatchNorm, Conv2d
from lean.nn.checkpoint import load as load_checkpoint
from lean.nn.loss import softmax_cross_entropy
from lean.train import TrainConfig, Trainer, evaluate

NETS = ["resnet14", "preresnet14", "densenet10", "densenetbc16"]


def _pair(net, **kw):
    """The plain net and a DDI net built from an identical copy (same seed), with nonzero batch-norm statistics."""
    def make():
        m = build(net, input_shape=(8, 8, 1), num_classes=4, seed=3)
        rng = np.random.default_rng(9)
        for layer in m.net.modules():
            if isinstance(layer, BatchNorm):
                layer.buffers["running_mean"][:] = rng.standard_normal(layer.num_features) * 0.1
                layer.buffers["running_var"][:] = rng.uniform(0.5, 1.5, layer.num_features)
                layer.params["bias"][:] = rng.standard_normal(layer.num_features) * 0.1
        return m
    return make(), add_ddi_gates(make(), **kw)


def _x(n=6, seed=0):
    return np.random.default_rng(seed).standard_normal((n, 8, 8, 1)).astype(np.float32)


@pytest.mark.parametrize("net", NETS)
def test_every_channel_kept_is_the_plain_network(net):
    plain, model = _pair(net, exits=2)
    assert len(exit_heads(model)) == 2
    x = _x()
    for _, block in ddi_blocks(model):
        block.forced = np.ones(block.channels)
    np.testing.assert_allclose(model.forward(x), plain.forward(x), rtol=1e-5, atol=1e-5)
    with controller(model).all_run():  # also what a trace runs (exits' heads included)
        np.testing.assert_allclose(model.forward(x), plain.forward(x), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("net", NETS)
@pytest.mark.parametrize("granularity", ["union", "pattern", "image"])
def test_forced_channel_masks_equal_the_narrowed_network(net, granularity):
    """Dropping channels in the gated blocks = the plain network whose dropped channels are zero after the batch
    norm that follows the block's first conv (or whose dropped new channels are zero: a plain dense layer)."""
    plain, model = _pair(net, exits=1, granularity=granularity)
    rng = np.random.default_rng(1)
    masks = {}
    for (name, block), (_, layer) in zip(ddi_blocks(model), [(n, m) for n, m in plain.net.named_modules()
                                                               if type(m).__name__ in ("Residual", "DenseLayer")],
                                         strict=True):
        mask = (rng.random(block.channels) < 0.5).astype(np.float64)
        mask[rng.integers(block.channels)] = 1.0
        block.forced = mask
        masks[name] = mask
        drop = np.flatnonzero(mask == 0)
        convs = [m for m in layer.body.modules() if isinstance(m, Conv2d)]
        if len(convs) == 1:  # a plain dense layer: its dropped new channels are zero
            layer.body.layers[-1][1].params["weight"][drop] = 0
        else:
            layers = [m for _, m in layer.body.layers]
            first = next(i for i, m in enumerate(layers) if isinstance(m, Conv2d))
            bn = next(m for m in layers[first + 1:] if isinstance(m, BatchNorm))
            bn.params["weight"][drop] = 0
            bn.params["bias"][drop] = 0
    x = _x(7)
    np.testing.assert_allclose(model.forward(x), plain.forward(x), rtol=1e-4, atol=1e-5)
    # per-image masks: each image as if run alone with its own mask, whatever the grouping
    per_image = rng.random((7, 1)) < 0.6
    for _, block in ddi_blocks(model):
        block.forced = (rng.random((7, block.channels)) < 0.5) * per_image
    y = model.forward(x)
    for i in range(7):
        for _, block in ddi_blocks(model):
            block._full, block.forced = block.forced, block.forced[i:i + 1]
        np.testing.assert_allclose(y[i:i + 1], model.forward(x[i:i + 1]), rtol=1e-4, atol=1e-5)
        for _, block in ddi_blocks(model):
            block.forced = block._full


@pytest.mark.parametrize("net", NETS)
def test_a_block_with_every_channel_dropped_is_its_skip_path(net):
    _, model = _pair(net, exits=0)
    x = _x(3)
    for _, block in ddi_blocks(model):
        block.forced = np.zeros(block.channels)
    controller(model).forward(x)
    h = x
    for layer in [m for _, m in model.net.layers][1:2]:
        h = layer.forward(h)
    for name, block in ddi_blocks(model):
        c = block.in_channels
        inp = np.random.default_rng(2).random((3, 8 if "1" in name.split(".")[0] else 4, 8 if "1" in name.split(
            ".")[0] else 4, c)).astype(np.float32)
        out = block.forward(inp)
        inner = block.block
        if type(inner).__name__ == "DenseLayer":
            np.testing.assert_array_equal(out[..., :c], inp)
            assert not out[..., c:].any()
        else:
            skip = inp if inner.shortcut is None else inner.shortcut.forward(inp)
            np.testing.assert_array_equal(out, np.maximum(skip, 0) if inner.relu_after else skip)
    assert controller(model).computation() < 0.5


def test_the_gate_gradient_by_central_differences():
    gate = ChannelGate(5, 7, 4, seed=1)
    to_float64(gate)
    gate.net["fc"].params["bias"][:] = 0.3
    check_module(gate, np.random.default_rng(0).standard_normal((3, 6, 6, 5)), rtol=1e-4, atol=1e-8)


@pytest.mark.parametrize("net", ["resnet14", "preresnet14", "densenet10", "densenetbc16"])
def test_a_gated_block_with_a_soft_forced_mask_by_central_differences(net):
    """With a forced mask the block is a plain function of its input and weights; its d loss / d mask (the
    straight-through gradient the gate receives) matches central differences on the mask's values."""
    _, model = _pair(net, exits=0, beta=0.0)
    to_float64(model.net)
    name, block = ddi_blocks(model)[2]
    rng = np.random.default_rng(4)
    shape = (3, 8 if name.startswith(("stage1", "dense1")) else 4, 8 if name.startswith(("stage1", "dense1")) else 4,
             block.in_channels)
    x = rng.standard_normal(shape)
    mask = rng.uniform(0.2, 1.0, (3, block.channels))
    block.forced = mask
    controller(model).forward(x, train=True)
    check_module(block, x, rtol=1e-4, atol=1e-7, samples=6)
    y = block.forward(x, train=True)
    dy = rng.standard_normal(y.shape)
    block.zero_grad()
    block.backward(dy.copy())
    for idx in [(0, 0), (1, block.channels - 1), (2, block.channels // 2)]:
        num = central_difference(lambda: float((block.forward(x, train=True) * dy).sum()), mask, idx)
        np.testing.assert_allclose(block.last_dmask[idx], num, rtol=1e-4, atol=1e-8)


def test_the_cost_term_gradient_and_the_straight_through_gate():
    """The gate's parameters get d loss / d p = d loss / d m (straight-through), with the cost term's
    beta * reg * per_channel / (full * n) added: checked against the soft surrogate by central differences."""
    _, model = _pair("resnet14", exits=0, beta=0.7, target=0.3)
    to_float64(model.net)
    ctrl = controller(model)
    name, block = ddi_blocks(model)[1]
    rng = np.random.default_rng(5)
    x = rng.standard_normal((4, 8, 8, block.in_channels))
    ctrl.forward(x, train=True)
    y = block.forward(x, train=True)
    assert ctrl.pass_share() > 0.3  # the gates start with every channel: reg = +1
    per = block.costs(8, 8)["per_channel"]
    full = ctrl.fixed_macs + block.costs(8, 8)["full"]  # the MACs of what this pass ran, every channel kept
    assert ctrl.cost_gradient(per, 4) == pytest.approx(0.7 * per / (full * 4))
    dy = rng.standard_normal(y.shape)
    model.net.zero_grad()
    block.backward(dy.copy())
    dmask = block.last_dmask
    fc = block.gate.net["fc"]
    p = block.gate.net

    def surrogate():  # sum over images and channels of p * dmask, dmask held fixed
        return float((block.gate.forward(x, train=True) * dmask).sum())

    for idx in [(0, 0), (3, 2), (block.channels - 1, 1)]:
        np.testing.assert_allclose(fc.grads["weight"][idx], central_difference(surrogate, fc.params["weight"], idx),
                                   rtol=1e-4, atol=1e-9)
    conv = p["conv1"]
    idx = (1, 0, 0, 0)
    np.testing.assert_allclose(conv.grads["weight"][idx], central_difference(surrogate, conv.params["weight"], idx),
                               rtol=1e-3, atol=1e-9)


def test_an_exit_head_adds_its_loss_and_gradient():
    _, model = _pair("resnet14", exits=1)
    to_float64(model.net)
    ctrl = controller(model)
    (_, head), = exit_heads(model)
    rng = np.random.default_rng(6)
    x = rng.standard_normal((5, 8, 8, head.channels))
    ctrl.labels = np.array([0, 1, 2, 3, 1])
    dy = rng.standard_normal(x.shape)
    model.net.zero_grad()
    assert head.forward(x, train=True) is x
    dx = head.backward(dy.copy())

    def loss():
        return float((head.forward(x, train=True) * dy).sum() + softmax_cross_entropy(head.logits(x, True),
                                                                                       ctrl.labels)[0])

    for idx in [(0, 0, 0, 0), (2, 3, 4, 1), (4, 7, 7, head.channels - 1)]:
        np.testing.assert_allclose(dx[idx], central_difference(loss, x, idx), rtol=1e-5, atol=1e-8)
    fc = head.head["fc"]
    head.zero_grad()
    head.forward(x, train=True)
    head.backward(dy.copy())
    for idx in [(0, 0), (3, 2)]:
        np.testing.assert_allclose(fc.grads["weight"][idx], central_difference(loss, fc.params["weight"], idx),
                                   rtol=1e-5, atol=1e-8)


@pytest.mark.parametrize("net", ["resnet14", "densenetbc16"])
def test_budgeted_halting_never_exceeds_the_budget(net):
    _, model = _pair(net, exits=3)
    rng = np.random.default_rng(7)
    for _, block in ddi_blocks(model):  # gates that keep different channels for different images
        fc = block.gate.net["fc"]
        fc.params["weight"][:] = rng.standard_normal(fc.params["weight"].shape) * 3
        fc.params["bias"][:] = rng.standard_normal(block.channels)
    plan = HaltingPlan(model)
    x = rng.standard_normal((40, 8, 8, 1)).astype(np.float32)
    most = plan.most[-1]
    reached = set()
    last = np.zeros(len(x))
    for budget in np.linspace(plan.smallest, most * 1.05, 14):
        out = budgeted_predict(model, x, budget, plan=plan, batch_size=16)
        assert out["macs"].max() <= budget and (out["exit"] >= 0).all()
        reached |= set(out["exit"].tolist())
        assert (out["macs"] >= last).all()  # more budget never spends less on an image
        last = out["macs"]
    assert len(reached) >= 3 and len(plan.exit_names) - 1 in reached
    full = budgeted_predict(model, x, most, plan=plan)  # a budget above the worst case: every image to the end
    assert (full["exit"] == len(plan.exit_names) - 1).all()
    controller(model).granularity = "image"
    np.testing.assert_allclose(full["logits"], model.predict(x), rtol=1e-4, atol=1e-5)
    with pytest.raises(ConfigError, match=f"smallest budget is {plan.smallest:,.0f} MACs"):
        budgeted_predict(model, x, plan.smallest - 1, plan=plan)


def test_bad_ddi_options_are_refused():
    with pytest.raises(ConfigError, match="--ddi must be"):
        DDIConfig(target=1.5)
    with pytest.raises(ConfigError, match="--ddi-granularity"):
        DDIConfig(granularity="rows")
    with pytest.raises(ConfigError, match="has none"):
        add_ddi_gates(build("lenet5", input_shape=(28, 28, 1), num_classes=10))
    with pytest.raises(ConfigError, match="DDI gates residual blocks"):
        ChannelGatedBlock(build("lenet5", input_shape=(28, 28, 1), num_classes=10).net, 1, 4)


@pytest.fixture(scope="module")
def digits():
    return load("digits")


def _trainer(digits, out=None):
    model = build("resnet8", input_shape=digits.input_shape, num_classes=10, seed=0)
    cfg = TrainConfig(net="resnet8", data="digits", epochs=2, batch_size=64, lr=0.05, seed=1,
                      methods=(DDIConfig(target=0.5, exits=1),))
    return Trainer(model, digits, cfg, out=out)


def test_training_moves_the_gates_and_exits_and_resumes_exactly(digits, tmp_path):
    straight = _trainer(digits)
    initial = {k: v.copy() for k, v in straight.model.parameters().items()}
    history = straight.run()
    params = straight.model.parameters()
    for key in [k for k in params if ".gate." in k or "exit" in k]:
        assert not np.array_equal(params[key], initial[key]) or key.endswith("bn.weight"), key
    assert history[-1]["ddi"]["train_computation"] < 1.0  # the cost term closed channels
    assert history[-1]["ddi"]["exit_loss"] > 0

    out = tmp_path / "ddi.h5"
    trainer = _trainer(digits, out)
    steps = trainer.steps_per_epoch()
    count = {"n": 0}

    def ctrl_c(info):
        count["n"] += 1
        if count["n"] == steps + 3:
            raise KeyboardInterrupt

    trainer.on_step = ctrl_c
    with pytest.raises(TrainingInterrupted):
        trainer.run()
    ckpt = load_checkpoint(out)
    trainer = Trainer(ckpt.model(), digits, TrainConfig.from_dict(ckpt.training), out=out)
    trainer.restore(ckpt)
    trainer.run()
    for k, v in params.items():
        np.testing.assert_array_equal(trainer.model.parameters()[k], v, err_msg=k)

    result = evaluate(out)
    assert result["test_accuracy"] == pytest.approx(history[-1]["test_accuracy"])
    assert result["ddi"]["computation"] == pytest.approx(history[-1]["ddi"]["test_computation"])
    json.dumps(result)
    # budgets: the curve's MACs never pass the budget; --record keeps what ran, and the workload costs it
    recorded = evaluate(out, record=True, budgets=[0.85], budget_unit="fraction")
    row = recorded["ddi_budgets"]["budgets"][0]
    assert row["macs_max"] <= row["budget_macs"] and recorded["recorded"]
    work = from_checkpoint(out)
    assert work.macs == pytest.approx(row["macs_mean"], rel=1e-6)  # what the images used, gates and exits too


def test_the_command_trains_budgets_records_and_refuses_bad_options(tmp_path, monkeypatch):
    from click.testing import CliRunner

    from lean.cli import main

    monkeypatch.chdir(tmp_path)
    runner = CliRunner()

    def run(*args):
        return runner.invoke(main, list(args), catch_exceptions=False)

    r = run("train", "--net", "resnet14", "--data", "digits", "--epochs", "2", "--batch-size", "64", "--ddi", "0.6",
            "--ddi-exits", "2", "--out", "ddi.h5")
    assert r.exit_code == 0, r.output
    assert "DDI: channel gates aiming at 60% of the network's MACs, 2 early exits" in r.output
    r = run("eval", "ddi.h5", "--budgets", "0.7,0.9,1.2", "--json")
    assert r.exit_code == 0, r.output
    curve = json.loads(r.output)["ddi_budgets"]
    assert [row["budget"] for row in curve["budgets"]] == pytest.approx([0.7, 0.9, 1.2])
    assert all(row["macs_max"] <= row["budget_macs"] for row in curve["budgets"])
    assert all(sum(row["exits"].values()) == 450 for row in curve["budgets"])
    r = run("eval", "ddi.h5", "--budget-mj", "0.05")
    assert r.exit_code == 0 and "pJ per MAC (the full network on shidiannao-like" in r.output, r.output
    r = run("eval", "ddi.h5", "--budget", "0.8", "--record")
    assert r.exit_code == 0 and "recorded in ddi.h5" in r.output, r.output
    r = run("hw", "predict", "--workload", "ddi.h5", "--accel", "eyeriss", "--json")
    assert r.exit_code == 0, r.output
    for bad, says in ((["eval", "ddi.h5", "--budget", "-1"], "--budget must be > 0"),
                      (["eval", "ddi.h5", "--budget", "0.01"], "the smallest budget is"),
                      (["eval", "ddi.h5", "--budgets", "0.5,x"], "--budgets takes shares"),
                      (["eval", "ddi.h5", "--budget", "0.5", "--budgets", "0.5"], "give one of"),
                      (["eval", "ddi.h5", "--plot", "c.png"], "give --budgets too"),
                      (["train", "--net", "resnet8", "--data", "digits", "--ddi", "1.5", "--out", "bad.h5"], "0<x<=1"),
                      (["train", "--net", "lenet5", "--data", "digits", "--ddi", "0.5", "--out", "bad.h5"],
                       "lenet5 has none"),
                      (["train", "--net", "resnet8", "--data", "digits", "--ddi", "0.5", "--ddi-granularity", "rows",
                        "--out", "bad.h5"], "--ddi-granularity"),
                      (["train", "--net", "resnet8", "--data", "digits", "--ddi", "0.5", "--slu", "0.5", "--out",
                        "bad.h5"], "use one of them")):
        r = run(*bad)
        assert r.exit_code != 0 and len(r.output.strip().splitlines()) == 1 and says in r.output, (bad, r.output)
    assert not (tmp_path / "bad.h5").exists()
    r = run("train", "--net", "resnet8", "--data", "digits", "--epochs", "1", "--out", "plain.h5")
    r = run("eval", "plain.h5", "--budget", "0.5")
    assert r.exit_code != 0 and "budgets need a DDI model" in r.output

    pytest.importorskip("matplotlib")  # last: the checks above run without it
    r = run("eval", "ddi.h5", "--budgets", "0.7,1.0", "--plot", "curve.png")
    assert r.exit_code == 0 and (tmp_path / "curve.png").stat().st_size > 0
