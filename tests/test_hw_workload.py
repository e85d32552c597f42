"""Workload shapes and MAC totals against the published figures."""

import json

import pytest

from lean.errors import HardwareModelError
from lean.hw import workload as wl
from lean.nets import build


def test_alexnet_conv_layers_match_the_known_shapes_and_666m_macs():
    net = wl.alexnet()
    convs = {layer.name: layer for layer in net.layers if layer.kind == "conv"}
    assert [(c.p, c.q, c.k) for c in convs.values()] == [(55, 55, 96), (27, 27, 256), (13, 13, 384),
                                                         (13, 13, 384), (13, 13, 256)]
    assert convs["conv2"].groups == 2 and convs["conv2"].c_per_group == 48
    total = sum(c.macs for c in convs.values())
    assert total == 665_784_864  # 666 M, as Eyeriss and the AlexNet paper count them


@pytest.mark.parametrize("name,expected,tolerance", [
    ("vgg16", 15.47e9, 0.01), ("resnet18", 1.81e9, 0.01), ("resnet50", 4.1e9, 0.01),
    ("mobilenetv2", 300e6, 0.01),
])
def test_imagenet_mac_totals(name, expected, tolerance):
    assert wl.BUILTIN[name]().macs == pytest.approx(expected, rel=tolerance)


def test_from_model_traces_lean_nets():
    workload = wl.load("resnet20", batch=4)
    assert workload.macs == 4 * 40_551_040  # ResNet-20 forward: 40.55 M MACs per 32x32 image
    model = build("lenet5", input_shape=(28, 28, 1))
    model.parameters()["conv2.weight"][:8] = 0.0
    layers = wl.from_model(model).layers
    assert [layer.kind for layer in layers] == ["conv", "conv", "fc", "fc", "fc"]
    assert layers[1].w_density == pytest.approx(0.5)


def test_from_file_json_and_toml(tmp_path):
    layer = {"name": "c", "kind": "conv", "n": 2, "c": 4, "k": 8, "h": 6, "w": 6, "r": 3, "s": 3, "padding": 1}
    (tmp_path / "w.json").write_text(json.dumps({"name": "tiny", "layers": [layer]}))
    (tmp_path / "w.toml").write_text('name = "tiny"\n[[layers]]\n' +
                                     "\n".join(f"{k} = {json.dumps(v)}" for k, v in layer.items()))
    for f in ("w.json", "w.toml"):
        w = wl.load(str(tmp_path / f))
        assert w.macs == 2 * 8 * 6 * 6 * 4 * 9
    (tmp_path / "bad.json").write_text(json.dumps({"layers": [{**layer, "colour": 3}]}))
    with pytest.raises(HardwareModelError, match="unknown fields"):
        wl.load(str(tmp_path / "bad.json"))
    (tmp_path / "neg.json").write_text(json.dumps({"layers": [{**layer, "k": 0}]}))
    with pytest.raises(HardwareModelError, match="k must be a positive integer"):
        wl.load(str(tmp_path / "neg.json"))
    with pytest.raises(HardwareModelError, match="unknown workload"):
        wl.load("googlenet")


def test_layer_shape_checks():
    with pytest.raises(HardwareModelError, match="does not fit"):
        wl.LayerShape("x", h=2, w=2, r=5, s=5)
    with pytest.raises(HardwareModelError, match="w_density"):
        wl.LayerShape("x", w_density=1.5)
    with pytest.raises(HardwareModelError, match="groups"):
        wl.LayerShape("x", c=3, k=4, groups=2)


def test_a_fully_connected_layer_reads_its_whole_input_with_its_own_weights():
    """An fc layer on a 512 x 7 x 7 input has 512 * 49 * 1000 weights (it was costed as a 1x1 conv with 512 * 1000
    weights repeated over 49 positions); its products are unchanged."""
    from lean.errors import HardwareModelError
    from lean.hw.workload import LayerShape

    fc = LayerShape("fc", "fc", 2, 512, 1000, 7, 7)
    assert (fc.c, fc.h, fc.w) == (512 * 49, 1, 1)
    assert fc.weight_count == 512 * 49 * 1000 and fc.macs == 2 * 512 * 49 * 1000
    assert fc.output_count == 2 * 1000
    flat = LayerShape("fc", "fc", 2, 512 * 49, 1000)
    assert fc == flat
    with pytest.raises(HardwareModelError, match="no window"):
        LayerShape("fc", "fc", 1, 512, 1000, 7, 7, 3, 3)
