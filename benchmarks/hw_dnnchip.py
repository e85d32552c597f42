"""The official DNN-Chip Predictor's Eyeriss AlexNet mapping, costed by lean (issue 16 target: its per-layer access
counts reproduced level by level).

    python benchmarks/hw_dnnchip.py

The mapping is benchmarks/mappings/dnnchip_eyeriss_alexnet.toml (their eyeriss/dataflow1..5.yaml in lean's form;
the file says how their levels map to lean's). Their numbers below are what their chip-predictor.py printed for
eyeriss/*.yaml (GATECH-EIC/DNN-Chip-Predictor at commit f0c62f9, PyYAML 6.0.3, run on the project machine), in
bytes: activations and weights 2 bytes, partial sums 3 (their psum precision is 24 bits).

lean runs with their conventions where they are switches: psum_bits=24, maps uncompressed, ``rf_counts=fills``
(only what enters and leaves a register file, a forwarded partial sum written into each RF on its way), and the
capacities their mapping assumes (their code checks none: conv2 unrolls 270 PEs, conv3 keeps 288 filter and 18
input words in an RF; lean is given a 12 x 27 array, 288- and 18-word RFs and an unbounded buffer for it). Their
layers are AlexNet's with grouped layers as per-group channels and all filters, as their layer files give them.
"""

from lean.hw import accelerator
from lean.hw import workload as wl
from lean.hw.mapping import load_mappings
from lean.hw.predictor import predict

MAPPING = "benchmarks/mappings/dnnchip_eyeriss_alexnet.toml"
# their layers: C, K, Yo = Xo, R = S, stride (N = 4)
LAYERS = {"conv1": (3, 96, 55, 11, 4), "conv2": (48, 256, 27, 5, 1), "conv3": (256, 384, 13, 3, 1),
          "conv4": (192, 384, 13, 3, 1), "conv5": (192, 256, 13, 3, 1)}
KEYS = ("dram_I", "dram_W", "dram_O", "glb_I", "glb_O", "noc_I", "noc_W", "noc_O", "noc_fwd_O", "rf_I", "rf_W",
        "rf_O")
THEIRS = {  # bytes, in KEYS order
    "conv1": (1525440, 2230272, 2365440, 4573800, 17740800, 4573800, 2230272, 10644480, 106444800, 9147600,
              15611904, 230630400),
    "conv2": (1476096, 2457600, 1492992, 67184640, 105255936, 67184640, 2457600, 53747712, 214990848, 134369280,
              66355200, 535237632),
    "conv3": (2786400, 1783296, 519168, 25114752, 66193920, 25114752, 1783296, 33486336, 66972672, 100459008,
              23182848, 200139264),
    "conv4": (2073600, 1327104, 519168, 37380096, 49061376, 37380096, 1327104, 24920064, 124600320, 74760192,
              17252352, 298262016),
    "conv5": (1382400, 884736, 346112, 24920064, 32707584, 24920064, 884736, 16613376, 83066880, 49840128,
              11501568, 198841344),
}


def lean_bytes(layer):
    """lean's counts in their units: bytes, with partial sums at 3 bytes and final outputs at 2."""
    c = layer.counts
    final = c["dram"]["output"]["writes"] - c["dram"]["output"]["reads"]
    dram_o = final * 2 + (c["dram"]["output"]["writes"] - final + c["dram"]["output"]["reads"]) * 3
    glb_o = c["glb"]["output"]["writes"] + c["glb"]["output"]["reads"] - c["dram"]["output"]["writes"]
    return dict(dram_I=c["dram"]["input"]["reads"] * 2, dram_W=c["dram"]["weight"]["reads"] * 2, dram_O=dram_o,
                glb_I=c["glb"]["input"]["reads"] * 2, glb_O=glb_o * 3, noc_I=c["noc"]["input"]["sends"] * 2,
                noc_W=c["noc"]["weight"]["sends"] * 2, noc_O=c["noc"]["output"]["sends"] * 3,
                noc_fwd_O=c["noc"]["output"]["reductions"] * 3, rf_I=c["rf"]["input"]["writes"] * 2,
                rf_W=c["rf"]["weight"]["writes"] * 2,
                rf_O=(c["rf"]["output"]["reads"] + c["rf"]["output"]["writes"]) * 3)


def main():
    layers = tuple(wl.LayerShape(name, "conv", n=4, c=c, k=k, h=(p - 1) * u + r, w=(p - 1) * u + r, r=r, s=r,
                                 stride=u) for name, (c, k, p, r, u) in LAYERS.items())
    acc = accelerator.eyeriss().with_overrides(array_cols=27, glb_bytes=1 << 30, rf_weight_words=288,
                                               rf_input_words=18, dram_format="dense", psum_bits=24,
                                               rf_counts="fills")
    p = predict(wl.Workload("dnnchip-alexnet", layers), acc, mappings=load_mappings(MAPPING))
    print("lean / DNN-Chip Predictor, access bytes per level and operand (1.000 = the same count)")
    print(f"{'layer':<6} " + " ".join(f"{k:>9}" for k in KEYS))
    exact = 0
    for layer in p.layers:
        mine = lean_bytes(layer)
        ratios = [mine[k] / theirs for k, theirs in zip(KEYS, THEIRS[layer.name], strict=True)]
        exact += sum(abs(r - 1) < 5e-4 for r in ratios)
        print(f"{layer.name:<6} " + " ".join(f"{r:>9.3f}" for r in ratios))
    print(f"{exact} of {len(KEYS) * len(LAYERS)} counts equal theirs to 0.05%")
    print("inputs (glb_I, noc_I, rf_I) follow different conventions: lean multicasts an input row to every PE whose "
          "filter row and output row meet it (Eyeriss's diagonal multicast) and a PE loads only the new pixels as "
          "its window slides; their code sends each PE its rows separately and reloads the whole window each step "
          "(and drops the innermost DRAM loop from the RF count, which changes conv1)")


if __name__ == "__main__":
    main()
