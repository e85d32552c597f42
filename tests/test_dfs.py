"""Dynamic fractional skipping: forced gates against the plain and skipped networks, the gate's hand-written
gradients, inference that runs each image's option only, the computation count, training phases and resume."""

import json
import subprocess
import sys

import numpy as np
import pytest
from gradcheck import central_difference as _central_difference
from gradcheck import to_float64

from lean.data import load
from lean.dynamic import add_dfs_gates, controller, dfs_blocks, option_costs
from lean.dynamic.config import DFSConfig
from lean.dynamic.dfs import FractionalBlock, computation_of, phase_epochs
from lean.errors import ConfigError, TrainingInterrupted
from lean.hw.workload import from_checkpoint
from lean.nets import build
from lean.nn.checkpoint import load as load_checkpoint
from lean.train import TrainConfig, Trainer, evaluate


def _dfs_net(bits=(8, 12), **kw):
    return add_dfs_gates(build("resnet14", input_shape=(8, 8, 1), num_classes=4, seed=3), bits=bits, **kw)


def test_forced_full_is_the_plain_network_and_forced_skip_the_shortcut():
    base = build("resnet14", input_shape=(8, 8, 1), num_classes=4, seed=3)
    model = add_dfs_gates(base, bits=(8, 12))
    ctrl = controller(model)
    assert [name for name, _ in dfs_blocks(model)] == ["stage1.1", "stage2.0", "stage2.1", "stage3.0", "stage3.1"]
    x = np.random.default_rng(0).standard_normal((5, 8, 8, 1)).astype(np.float32)
    ctrl.mode = "full"
    np.testing.assert_array_equal(model.forward(x), base.forward(x))
    ctrl.mode = "skip"
    ctrl.reset_counts()
    for name, block in dfs_blocks(model):
        inp = np.random.default_rng(1).random((3, 8 if name.startswith("stage1") else 4, 8 if name.startswith(
            "stage1") else 4, block.in_channels)).astype(np.float32)
        out = block.forward(inp)
        expected = inp if block.block.shortcut is None else block.block.shortcut.forward(inp)
        np.testing.assert_array_equal(out, expected)  # exactly the identity (or option-A) path
    assert ctrl.computation() == 0.0


def test_a_bit_option_quantizes_weights_and_inputs_and_shares_the_weights():
    model = _dfs_net(bits=(4,))
    block = dict(dfs_blocks(model))["stage1.1"]
    conv = dict(block.quantized[4].named_modules())["body.conv1"]
    assert len(np.unique(conv.weight())) <= 2 ** 4 - 1  # symmetric 4-bit codes
    assert conv.input_bits == 4
    original = block.block.body["conv1"]
    assert conv.form.params["latent"] is original.params["weight"]  # one weight: training the copy trains it
    x = np.random.default_rng(2).random((2, 8, 8, block.in_channels)).astype(np.float32)
    ctrl = controller(model)
    ctrl.mode = "4"
    ctrl.forward(x)
    y4 = block.forward(x, train=True)
    ctrl.mode = "full"
    assert not np.allclose(y4, block.forward(x, train=True))


def test_gate_gradients_equal_the_soft_choice_by_central_differences():
    """For a fixed output gradient dy the straight-through gate is the gradient of the soft choice
    sum_k p_k * (<dy, out_k> + beta * reg * cost_k), with every option's output held fixed."""
    model = _dfs_net(bits=(8,), beta=0.05, target=0.4)
    net = model.net
    to_float64(net)
    name, block = dfs_blocks(model)[1]  # stage2.0: a downsampling block, skipped through option A
    block.share_arrays()
    ctrl = controller(model)
    rng = np.random.default_rng(3)
    x = rng.standard_normal((4, 8, 8, block.in_channels))
    ctrl.forward(x, train=True)
    y = block.forward(x, train=True)
    dy = rng.standard_normal(y.shape)
    cost = ctrl.cost_gradient()
    assert abs(cost).max() > 0
    outs = [block._run(k, x, True) for k in range(3)]
    net.zero_grad()
    block.backward(dy.copy())

    def soft_loss():
        ctrl.forward(x, train=False)
        z = x.mean(axis=(1, 2)) @ block.params["proj_weight"].T + block.params["proj_bias"]
        probs = ctrl.choose(z)
        gains = np.stack([(dy * o).reshape(len(x), -1).sum(axis=1) for o in outs], axis=1) + cost
        return float((probs * gains).sum())

    for module, key in [(block, "proj_weight"), (block, "proj_bias"), (ctrl, "w_x"), (ctrl, "w_h"), (ctrl, "b"),
                        (ctrl, "w_out"), (ctrl, "b_out")]:
        p = module.params[key]
        for idx in list(np.ndindex(p.shape))[:8]:
            np.testing.assert_allclose(module.grads[key][idx], _central_difference(soft_loss, p, idx), rtol=1e-4,
                                       atol=1e-8, err_msg=f"{key}{idx}")


def test_observe_phase_input_gradient_by_central_differences():
    """Phase 2: the output is the full block's; the gate adds only its cost term, through the pooled input."""
    model = _dfs_net(bits=(8,), beta=0.05)
    to_float64(model.net)
    _, block = dfs_blocks(model)[0]
    block.share_arrays()
    ctrl = controller(model)
    ctrl.mode = "observe"
    rng = np.random.default_rng(4)
    x = rng.standard_normal((3, 8, 8, block.in_channels))
    ctrl.forward(x, train=True)
    y = block.forward(x, train=True)
    dy = rng.standard_normal(y.shape)
    cost = ctrl.cost_gradient()
    model.net.zero_grad()
    dx = block.backward(dy.copy())

    def loss():
        ctrl.forward(x, train=False)
        z = x.mean(axis=(1, 2)) @ block.params["proj_weight"].T + block.params["proj_bias"]
        return float((dy * block.block.forward(x, train=True)).sum() + (ctrl.choose(z) * cost).sum())

    for idx in [(0, 0, 0, 0), (1, 3, 4, 2), (2, 7, 7, block.in_channels - 1), (0, 5, 1, 3)]:
        np.testing.assert_allclose(dx[idx], _central_difference(loss, x, idx), rtol=1e-4, atol=1e-7)


def test_inference_runs_each_image_once_in_its_own_option():
    model = _dfs_net(bits=(8, 12))
    ctrl = controller(model)
    ctrl.params["b_out"][:] = [0.0, 0.0, 0.0, 0.0]
    ctrl.params["w_out"][:] = np.random.default_rng(5).standard_normal(ctrl.params["w_out"].shape) * 3
    x = np.random.default_rng(6).standard_normal((16, 8, 8, 1)).astype(np.float32)
    model.forward(x)  # input ranges set
    seen = {}
    for name, block in dfs_blocks(model):
        for k in range(4):
            module = block._option(k)
            if module is None:
                continue
            original = module.forward

            def spy(inp, train=False, original=original, key=(name, k)):
                seen[key] = seen.get(key, 0) + len(inp)
                return original(inp, train)

            module.forward = spy
    for _, block in dfs_blocks(model):
        block.reset_counts()
    y = model.forward(x)
    assert y.shape == (16, 4)
    for name, block in dfs_blocks(model):
        choice = block.last_choice
        assert block.counts.sum() == 16
        for k in range(1, 4):
            assert seen.get((name, k), 0) == int((choice == k).sum())  # a skipped image ran nothing
    choices = [b.counts for _, b in dfs_blocks(model)]
    assert len({tuple(c) for c in choices}) > 1 or choices[0].max() < 16  # the gates did choose
    assert ctrl.computation() == pytest.approx(computation_of(choices, (8, 12)))


def test_computation_is_the_papers_measure():
    assert option_costs((8, 16)).tolist() == [0.0, 0.0625, 0.25, 1.0]
    # two blocks, four images: block 1 skips two and runs two at full precision, block 2 runs all at 8 bits
    assert computation_of([np.array([2, 0, 0, 2]), np.array([0, 4, 0, 0])], (8, 16)) == pytest.approx(
        (2 * 1.0 + 4 * 0.0625) / 8)
    model = _dfs_net(bits=(8, 16))
    ctrl = controller(model)
    ctrl.mode = "8"
    model.forward(np.zeros((2, 8, 8, 1), np.float32))
    assert ctrl.computation() == 0.0625


def test_bad_dfs_options_are_refused():
    with pytest.raises(ConfigError, match="--dfs must be"):
        DFSConfig(target=1.5)
    with pytest.raises(ConfigError, match="--dfs-bits"):
        DFSConfig(bits="8,4")
    with pytest.raises(ConfigError, match="no joint phase"):
        phase_epochs(4, 2, 2)
    with pytest.raises(ConfigError, match="no residual blocks"):
        add_dfs_gates(build("lenet5", input_shape=(28, 28, 1), num_classes=10))
    with pytest.raises(ConfigError, match="already has gates"):
        add_dfs_gates(_dfs_net())
    with pytest.raises(ConfigError, match="DFS gates residual blocks"):
        FractionalBlock(build("lenet5", input_shape=(28, 28, 1), num_classes=10).net, 1)


@pytest.fixture(scope="module")
def digits():
    return load("digits")


def _trainer(digits, out=None):
    model = build("resnet8", input_shape=digits.input_shape, num_classes=10, seed=0)
    cfg = TrainConfig(net="resnet8", data="digits", epochs=3, batch_size=64, lr=0.05, seed=1,
                      methods=(DFSConfig(target=0.5, bits="8,12", base_epochs=1, gate_epochs=1),))
    return Trainer(model, digits, cfg, out=out)


def _params(model):
    return {k: v.copy() for k, v in model.parameters().items()}


def test_three_phases_train_what_they_should_and_resume_exactly(digits, tmp_path):
    straight = _trainer(digits)
    steps = straight.steps_per_epoch()
    snapshots = {}

    def watch(info):
        if info["step"] == steps:
            snapshots[info["epoch"]] = _params(straight.model)
            buffers[info["epoch"]] = {k: v.copy() for k, v in straight.model.state().items()
                                      if k.startswith("buffers/")}

    buffers = {}
    initial = _params(straight.model)
    straight.on_step = watch
    history = straight.run()
    assert [h["dfs"]["phase"] for h in history] == [1, 2, 3]
    gate_keys = {k for k in snapshots[1] if k.startswith("gate.") or k.endswith("proj_weight")
                 or k.endswith("proj_bias")}
    changed = {k for k in snapshots[1] if not np.array_equal(snapshots[1][k], snapshots[2][k])}
    assert changed and changed <= gate_keys  # phase 2 moved the gates only...
    for k, v in buffers[1].items():  # ...and kept the backbone's batch-norm statistics
        np.testing.assert_array_equal(buffers[2][k], v, err_msg=k)
    for k in gate_keys:  # phase 1 did not move the unused gates (no weight decay, no momentum)
        np.testing.assert_array_equal(snapshots[1][k], initial[k], err_msg=k)
    assert history[0]["dfs"]["train_computation"] == 1.0  # phase 1: every block at full precision
    assert 0.0 < history[2]["dfs"]["test_computation"] <= 1.0
    assert history[2]["dfs"]["test_choices"].keys() == {"stage2.0", "stage3.0"}
    assert history[1]["lr"] == pytest.approx(0.005) and history[2]["lr"] == pytest.approx(0.005)
    energy = [0.0] + [h["training_energy_j"] for h in history]
    spent = np.diff(energy)  # the joint phase runs every option of a gated block: the meter sees the copies
    assert spent[2] > 1.2 * spent[0]  # resnet8: the ungated stem and first block are most of the work

    # interrupted once in each phase and resumed: the same weights as the straight run
    out = tmp_path / "dfs.h5"
    trainer = _trainer(digits, out)
    for stop in (steps // 2, steps + 3, 2 * steps + 5, None):
        count = {"n": 0}
        done = trainer.epoch * steps + trainer.step_in_epoch

        def ctrl_c(info, stop=stop, count=count, done=done):
            count["n"] += 1
            if stop is not None and count["n"] == stop - done:
                raise KeyboardInterrupt

        trainer.on_step = ctrl_c
        if stop is None:
            trainer.run()
            break
        with pytest.raises(TrainingInterrupted):
            trainer.run()
        ckpt = load_checkpoint(out)
        trainer = Trainer(ckpt.model(), digits, TrainConfig.from_dict(ckpt.training), out=out)
        trainer.restore(ckpt)
    for k, v in _params(straight.model).items():
        np.testing.assert_array_equal(trainer.model.parameters()[k], v, err_msg=k)

    result = evaluate(out)
    assert result["test_accuracy"] == pytest.approx(history[-1]["test_accuracy"])
    report = result["dfs"]
    assert report["images"] == len(digits.y_test)
    assert report["computation"] == pytest.approx(history[-1]["dfs"]["test_computation"])
    assert sum(report["choices"]["stage2.0"].values()) == len(digits.y_test)
    json.dumps(result)

    # --record: the checkpoint keeps each block's shares, and the hardware workload runs each option's layers
    # for its share of the images at its bit width (skipped images run nothing)
    recorded = evaluate(out, record=True)
    assert recorded["recorded"] and recorded["test_accuracy"] == result["test_accuracy"]
    assert evaluate(out)["test_accuracy"] == result["test_accuracy"]  # the rewritten file still loads
    layers = from_checkpoint(out).layers
    for block in ("stage2.0", "stage3.0"):
        choices = report["choices"][block]
        ran = [layer for layer in layers if layer.name.startswith(f"{block}.block.body.conv1@")]
        assert sum(layer.fraction for layer in ran) == pytest.approx(1 - choices["skip"] / len(digits.y_test))
        for layer in ran:
            option = layer.name.split("@")[1]
            assert layer.fraction == pytest.approx(choices[option] / len(digits.y_test))
            assert layer.w_bits == layer.a_bits == (16 if option == "full" else int(option))
    assert all("@" not in layer.name for layer in layers if layer.name.startswith("stage1."))


def test_the_command_trains_reports_records_and_plots_dfs(tmp_path, monkeypatch):
    from click.testing import CliRunner

    from lean.cli import main

    monkeypatch.chdir(tmp_path)
    runner = CliRunner()

    def run(*args):
        return runner.invoke(main, list(args), catch_exceptions=False)

    r = run("train", "--net", "resnet8", "--data", "digits", "--epochs", "3", "--batch-size", "64", "--dfs", "0.4",
            "--dfs-bits", "8,12", "--dfs-base-epochs", "1", "--dfs-gate-epochs", "1", "--out", "dfs.h5")
    assert r.exit_code == 0, r.output
    assert "DFS: 1 epochs base network, 1 gates alone, 1 jointly at 40% computation" in r.output
    r = run("eval", "dfs.h5", "--record")
    assert r.exit_code == 0 and "fractional skipping: computation" in r.output and "recorded in dfs.h5" in r.output
    assert "stage2.0" in r.output and "stage3.0" in r.output
    # a fresh process that never imported lean.dynamic rebuilds the model (the layers name their module)
    fresh = subprocess.run([sys.executable, "-c", "import sys; from lean.nn import load_model; "
                            "m = load_model('dfs.h5'); assert 'lean.dynamic' in sys.modules; print(m.name)"],
                           capture_output=True, text=True, cwd=tmp_path)
    assert fresh.returncode == 0 and fresh.stdout.strip() == "resnet8", fresh.stderr
    for bad, says in ((["--dfs", "1.5"], "0<x<=1"), (["--dfs", "0.5", "--dfs-bits", "8,x"], "--dfs-bits"),
                      (["--dfs-bits", "8"], "give that too")):
        r = run("train", "--net", "resnet8", "--data", "digits", "--epochs", "3", *bad, "--out", "bad.h5")
        assert r.exit_code != 0 and len(r.output.strip().splitlines()) == 1 and says in r.output, r.output
    # the authors' protocol: the gates on a trained base network (--init), no base phase
    r = run("train", "--net", "resnet8", "--data", "digits", "--epochs", "2", "--batch-size", "64", "--init",
            "dfs.h5", "--out", "bad.h5")
    assert r.exit_code != 0 and "--init dfs.h5 holds a different network" in r.output  # a DFS net is not resnet8
    r = run("train", "--net", "resnet8", "--data", "digits", "--epochs", "1", "--batch-size", "64", "--out", "base.h5")
    assert r.exit_code == 0
    r = run("train", "--net", "resnet8", "--data", "digits", "--epochs", "2", "--batch-size", "64", "--init",
            "base.h5", "--dfs", "0.5", "--dfs-base-epochs", "0", "--dfs-gate-epochs", "1", "--out", "on-base.h5",
            "--json")
    assert r.exit_code == 0 and json.loads(r.output.strip().splitlines()[-1])["dfs_phases"] == [0, 1, 1]
    # a run with the default phases (half base) extended on resume keeps its base phase: more joint epochs
    r = run("train", "--net", "resnet8", "--data", "digits", "--epochs", "4", "--batch-size", "64", "--dfs", "0.5",
            "--out", "grow.h5")
    assert r.exit_code == 0
    r = run("train", "--resume", "grow.h5", "--epochs", "8", "--json")
    assert r.exit_code == 0 and json.loads(r.output.strip().splitlines()[-1])["dfs_phases"] == [2, 1, 5]
    r = run("train", "--net", "lenet5", "--data", "digits", "--epochs", "3", "--dfs", "0.5", "--out", "bad.h5")
    assert r.exit_code != 0 and "no residual blocks" in r.output and len(r.output.strip().splitlines()) == 1
    assert not (tmp_path / "bad.h5").exists()

    pytest.importorskip("matplotlib")  # last: the checks above run without it
    r = run("info", "dfs.h5", "--plot", "curves.png")
    assert r.exit_code == 0 and (tmp_path / "curves.png").stat().st_size and (tmp_path / "curves-choices.png").exists()
