"""Crossbar mappings of layers (issue 17, in progress): geometry and component counts by hand."""

import pytest

from lean.errors import HardwareModelError
from lean.hw import workload as wl
from lean.hw.pim import crossbar_mapping


def test_a_tiny_conv_on_16x16_crossbars_by_hand():
    # 3 -> 4 channels, 3x3 on a 4x4 map: 27 rows, 4 filters, 4 output positions
    layer = wl.LayerShape("c", "conv", n=1, c=3, k=4, h=4, w=4, r=3, s=3)
    m = crossbar_mapping(layer, xbar=16, cell_bits=2, weight_bits=8, input_bits=8, dac_bits=1, signed="offset")
    # an 8-bit offset weight takes 4 two-bit cells: 16 columns, one crossbar wide; 27 rows, two crossbars tall
    assert (m.rows, m.cols, m.cells_per_weight, m.row_tiles, m.col_tiles, m.crossbars) == (27, 4, 4, 2, 1, 2)
    assert (m.vectors, m.input_slices) == (4, 8)
    assert m.crossbar_reads == 4 * 8 * 2
    assert m.dac_conversions == 4 * 8 * 27          # every weight row driven once per input bit
    assert m.adc_conversions == m.shift_adds == 4 * 8 * 16 * 2   # 16 columns in each of the 2 crossbars
    assert m.steps == 32 and m.cell_utilization == pytest.approx(27 * 16 / (2 * 256))
    # a differential pair: 7 magnitude bits in 4 cells, twice: 32 columns, two crossbars wide
    d = crossbar_mapping(layer, xbar=16, cell_bits=2, weight_bits=8, input_bits=8, signed="differential")
    assert (d.cells_per_weight, d.col_tiles, d.crossbars) == (8, 2, 4)
    assert d.dac_conversions == 4 * 8 * 27 * 2 and d.adc_conversions == 4 * 8 * 32 * 2
    # two DAC bits halve the slices; four replicas quarter the steps, not the conversions
    r = crossbar_mapping(layer, xbar=16, cell_bits=2, weight_bits=8, input_bits=8, dac_bits=2, replicas=4)
    assert r.input_slices == 4 and r.steps == 4 and r.crossbars == 8 and r.adc_conversions == 4 * 4 * 16 * 2


def test_groups_and_fully_connected_layers():
    grouped = wl.LayerShape("g", "conv", n=2, c=8, k=8, h=3, w=3, r=3, s=3, padding=1, groups=2)
    m = crossbar_mapping(grouped, xbar=64, cell_bits=4, weight_bits=8, input_bits=8)
    assert (m.rows, m.cols, m.crossbars) == (36, 4, 2)                   # one crossbar per group
    assert m.crossbar_reads == 2 * 9 * 8 * 2 and m.steps == 2 * 9 * 8    # groups run side by side
    fc = crossbar_mapping(wl.LayerShape("fc", "fc", n=3, c=300, k=10), xbar=128, cell_bits=4, weight_bits=8,
                          input_bits=8)
    assert (fc.rows, fc.row_tiles, fc.col_tiles, fc.vectors) == (300, 3, 1, 3)


@pytest.mark.parametrize("kwargs,message", [
    ({"xbar": 0}, "xbar must be a positive integer"),
    ({"signed": "mirror"}, "unknown signed-weight scheme"),
    ({"replicas": 1.5}, "replicas must be a positive integer"),
])
def test_bad_mappings_are_one_error(kwargs, message):
    layer = wl.LayerShape("c", "conv", n=1, c=3, k=4, h=4, w=4, r=3, s=3)
    with pytest.raises(HardwareModelError, match=message):
        crossbar_mapping(layer, **kwargs)
    with pytest.raises(HardwareModelError, match="pooling layer has no weights"):
        crossbar_mapping(wl.LayerShape("p", "pool", n=1, c=3, k=3, h=4, w=4, r=2, s=2, stride=2, groups=3))


@pytest.fixture(scope="module")
def lenet(tmp_path_factory):
    from lean.data import load
    from lean.nets import build
    from lean.nn import load_model
    from lean.train import TrainConfig, Trainer

    data = load("digits")
    path = tmp_path_factory.mktemp("pim") / "lenet.h5"
    model = build("lenet5", input_shape=data.input_shape, num_classes=10, seed=0)
    Trainer(model, data, TrainConfig(net="lenet5", data="digits", epochs=3, batch_size=32, lr=0.05), out=path).run()
    return load_model(path), data.normalize(data.x_test), data.y_test, path


def test_a_trained_model_through_the_crossbar(lenet):
    from lean.hw.pim import simulate
    from lean.nn.layers import Conv2d, Linear

    model, x, y, _ = lenet
    ideal = simulate(model, x, y, weight_bits=8, input_bits=8, cell_bits=4, xbar_rows=128)
    assert ideal["digital_accuracy"] > 0.8                       # the digits test set, far above chance
    # 8-bit weights and inputs with ideal converters: within a point of the float model
    assert abs(ideal["crossbar_accuracy"] - ideal["digital_accuracy"]) <= 0.01
    coarse = [simulate(model, x, y, weight_bits=8, input_bits=8, cell_bits=4, xbar_rows=128, adc_bits=b)
              for b in (4, 8)]
    assert coarse[0]["crossbar_accuracy"] < coarse[1]["crossbar_accuracy"] <= ideal["crossbar_accuracy"] + 0.01
    # the model is left as it was: no hook stays behind
    assert all(m.operand_hook is None for m in model.net.modules() if isinstance(m, (Conv2d, Linear)))


def test_lean_hw_pim_simulates_a_checkpoint(lenet):
    import json

    from click.testing import CliRunner

    from lean.cli import main

    path = str(lenet[3])
    r = CliRunner().invoke(main, ["hw", "pim", "--simulate", path, "--images", "100", "--cell-bits", "4",
                                  "--adc-range", "0.125", "--json"])
    assert r.exit_code == 0, r.output
    out = json.loads(r.output.strip().splitlines()[-1])
    assert out["images"] == 100 and out["data"] == "digits" and out["settings"]["cell_bits"] == 4
    assert abs(out["crossbar_accuracy"] - out["digital_accuracy"]) <= 0.05
    for args, message in ((["--xbar", "0"], "--xbar"), (["--adc-range", "2"], "--adc-range")):
        r = CliRunner().invoke(main, ["hw", "pim", "--simulate", path, *args])
        assert r.exit_code != 0 and message in r.output
    r = CliRunner().invoke(main, ["hw", "pim", "--simulate", str(lenet[3]) + ".missing"])
    assert r.exit_code != 0 and "does not exist" in r.output and "Traceback" not in r.output


def test_lean_hw_pim_maps_a_workload():
    import json

    from click.testing import CliRunner

    from lean.cli import main
    from lean.hw.pim import map_workload

    r = CliRunner().invoke(main, ["hw", "pim", "--workload", "alexnet", "--batch", "2", "--json"])
    assert r.exit_code == 0, r.output
    out = json.loads(r.output.strip().splitlines()[-1])
    assert [m["name"] for m in out["layers"]][:2] == ["conv1", "conv2"] and len(out["layers"]) == 8
    expected = map_workload(wl.alexnet().with_batch(2), xbar=128, cell_bits=2, weight_bits=8, input_bits=8,
                            dac_bits=1, signed="offset")
    assert out["total"] == expected["total"]
    assert out["total"]["crossbars"] == sum(m["crossbars"] for m in out["layers"])
    for args in ([], ["--workload", "alexnet", "--simulate", "x.h5"]):
        r = CliRunner().invoke(main, ["hw", "pim", *args])
        assert r.exit_code != 0 and "give one of --simulate CHECKPOINT or --workload W" in r.output


def test_sweep_of_adc_bits_and_the_designs_defaults(lenet, tmp_path):
    import json

    from click.testing import CliRunner

    from lean.cli import main

    path = str(lenet[3])
    r = CliRunner().invoke(main, ["hw", "pim", "--simulate", path, "--arch", "timely", "--images", "60",
                                  "--sweep", "adc-bits=4..5", "--json"])
    assert r.exit_code == 0, r.output
    out = json.loads(r.output.strip().splitlines()[-1])
    # TIMELY's functional crossbar: 256 rows of 4-bit cells, all 8 input bits in one time-coded pulse
    assert (out["settings"]["xbar_rows"], out["settings"]["cell_bits"], out["settings"]["dac_bits"]) == (256, 4, 8)
    assert out["sweep"] == "adc_bits" and [row["value"] for row in out["rows"]] == [4, 5]
    assert all(0 <= row["crossbar_accuracy"] <= 1 for row in out["rows"])
    png = tmp_path / "adc.png"
    r = CliRunner().invoke(main, ["hw", "pim", "--simulate", path, "--images", "60", "--sweep", "adc-bits=6..6",
                                  "--plot", str(png)])
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        assert r.exit_code != 0 and "--plot needs matplotlib" in r.output
    else:
        assert r.exit_code == 0 and "adc_bits" in r.output and "digital" in r.output and png.exists(), r.output
    for spec, message in (("adc-bits=9..4", "A <= B"), ("speed=1..2", "KEY one of")):
        r = CliRunner().invoke(main, ["hw", "pim", "--simulate", path, "--sweep", spec])
        assert r.exit_code != 0 and message in r.output and len(r.output.strip().splitlines()) == 1


def test_a_model_with_weights_the_crossbar_cannot_map_is_refused(lenet):
    from lean.hw.pim import simulate
    from lean.nets import build
    from lean.train.e2train import add_skip_gates

    model, x, y, _ = lenet
    gated = add_skip_gates(build("resnet8", input_shape=(8, 8, 1), num_classes=10, seed=0), target=0.5)
    with pytest.raises(HardwareModelError, match=r"GateController\) holds weights the crossbar cannot map"):
        simulate(gated, x[:4], y[:4])


def test_lean_hw_pim_refuses_a_checkpoint_the_crossbar_cannot_map(tmp_path):
    from click.testing import CliRunner

    from lean.cli import main

    path = str(tmp_path / "gated.h5")
    r = CliRunner().invoke(main, ["train", "--net", "resnet8", "--data", "digits", "--slu", "0.5", "--epochs", "1",
                                  "--train-limit", "256", "--out", path])
    assert r.exit_code == 0, r.output
    r = CliRunner().invoke(main, ["hw", "pim", "--simulate", path, "--images", "10"])
    assert r.exit_code != 0 and "holds weights the crossbar cannot map" in r.output, r.output
    assert len(r.output.strip().splitlines()) == 1
