"""The SmartExchange accelerator against DianNao, SCNN, Cambricon-X and Bit-pragmatic on the same workload.

Zhao et al., "SmartExchange: Trading Higher-cost Memory Storage/Access for Lower-cost Computation", ISCA 2020,
compares its accelerator with these four. lean costs each with one model, its loop-nest predictor
(``lean.hw.predictor``) on the design's built-in accelerator file (``lean/hw/accelerators/*.toml``, every
parameter with its source or marked assumed), all at 1 GHz in the same 45 nm technology table, and gives each
design the workload as that design treats it (``treat``):

- **DianNao** (``diannao``): 16 x 16 multipliers into adder trees, 16-bit, its three buffers; zeros are
  multiplied like any value, weights travel dense (a SmartExchange layer's weights rebuilt first).
- **Cambricon-X**: the same 16 x 16 multipliers as 16 PEs fed by an indexing module with the inputs of their
  non-zero weights: cycles and MACs follow the weights' density only; weights stored with an index (CSR).
- **SCNN**: 64 PEs x 4 x 4 multipliers multiplying every non-zero weight by every non-zero activation (the
  Cartesian product): both densities; weights and activations stored compressed (zero runs). Its compute
  cycles come from its own cycle model (``scnn.py``, after DNNsim's: 4 x 4 steps, the busiest of 64 PEs on
  each tile, accumulator-bank conflicts, fully connected layers as 16 x 16 maps); energy from the predictor.
- **Bit-pragmatic**: a DaDianNao tile (16 filters x 16 lanes) whose activations go bit-serially over their
  essential (one) bits, 16 windows at once: its compute cycles are the dense tile's times ``essential_bits / 16``,
  where ``essential_bits`` is the mean, over the 16 lanes that step together, of the largest number of one bits
  (``lane_max_ones``: a Poisson model of an activation's ones, its mean ``ones_per_activation``); its multiplies
  become that many shift-and-adds.
- **SmartExchange**: row-wise PE lines (row stationary), 8-bit activations and basis B, weights stored as Ce
  codes and B (a checkpoint's ``w_stored_bits``) and rebuilt next to the MACs by shift-and-add (its
  ``rebuild_adds``, the predictor's ``rebuild`` energy), zero Ce rows skipped by the index selector (a
  checkpoint's weight density is Ce's row density). On a workload without SmartExchange layers (a built-in net)
  the weights are decomposed as if by the paper's structure (``_se_stored_bits``: 4-bit Ce codes for the kept
  rows, one index bit per row, an 8-bit 3 x 3 basis per 192 rows) with Ce rows removed at ``ce_row_density``:
  a share for every layer (default 1: none removed), or ``"smartdeal"``, the per-layer shares the authors' code
  prunes on its CIFAR-10 ResNet-18 and MobileNetV2 (``PRUNED_ROW_SHARES``, ``layer_densities``). The zeros the
  removed rows leave in the rebuilt weights are the weight sparsity Cambricon-X and SCNN see.

The result: per design its cycles, energy by component (MAC, RF, NoC, buffer, DRAM, rebuild), speed-up and
energy efficiency against a reference design. With SmartExchange in the list, a control run comes with it
(``smartexchange-dense``: the same accelerator on the model's dense 8-bit weights, nothing rebuilt or skipped), so
what the method saves is told apart from what the accelerator's dataflow and 8-bit datapath save. The
assumptions (every ``assumed`` source in the accelerator files, the Bit-pragmatic activation statistics, the
SmartExchange row density of a built-in net) are printed.
"""

import math
from dataclasses import replace

from ...errors import HardwareModelError
from .. import tech
from ..accelerator import load as load_accelerator
from ..predictor import predict
from ..workload import Workload
from ..workload import load as load_workload
from . import scnn

DESIGNS = {"smartexchange": "smartexchange", "diannao": "diannao", "scnn": "scnn",
           "cambricon-x": "cambricon-x", "bit-pragmatic": "bit-pragmatic"}
CONTROL = "smartexchange-dense"   # the SmartExchange accelerator on the model's dense 8-bit weights
# The mean number of one bits of an 8-bit activation code, zeros included: SmartExchange's MobileNetV2 analysis
# measured 79.8% of the activation bits zero at 8 bits (a third-party summary of the paper; lean's default for
# every network, printed as an assumption)
ONES_PER_ACTIVATION = 8 * (1 - 0.798)

# Per-layer shares of weight rows pruned before the decomposition, from the SmartExchange authors' follow-up code
# (github.com/VITA-Group/SmartDeal at 8e1de77: SmartDeal-{Training,Inference}/{resnet18,mobilenetv2}-structure-
# percentage.txt, the threshold_list of run_structural_sedt_and_save.py and main.py --structural_pruning). One
# share per weight layer in the order of their CIFAR-10 models (lean's resnet18-cifar and mobilenetv2-cifar
# built-ins). Their se/alg_structural.py prunes, in each group of 32 filters, that share (rounded up) of the
# (input channel, kernel row) rows with the smallest summed magnitude; of a 1x1 conv, input channels; fc layers
# not at all. These are the authors' settings for these two models; the ISCA paper's own per-layer figures were
# not in any source lean could read.
PRUNED_ROW_SHARES = {
    "resnet18-cifar": (0.4, 0.6, 0.4, 0.4, 0.4, 0.2, 0.3, 0.1, 0.4, 0.4, 0.3, 0.3, 0.2, 0.4, 0.6, 0.8, 0.9, 0.6,
                       0.9, 0.9, 0.1),
    "mobilenetv2-cifar": (0.1, 0.4, 0, 0.8, 0.2, 0.2, 0, 0.5, 0.05, 0.2, 0, 0.4, 0.1, 0, 0.1, 0.2, 0, 0.4, 0.2, 0,
                          0.4, 0.2, 0, 0.4, 0.2, 0, 0.4, 0.3, 0, 0.5, 0.5, 0, 0.6, 0.6, 0, 0.6, 0.1, 0.5, 0, 0.6,
                          0.6, 0, 0.6, 0.4, 0, 0.6, 0.6, 0, 0.8, 0.8, 0, 0.8, 0.6, 0, 0.8, 0.6, 0.8, 0),
}
PROFILE = "smartdeal"


def _check_ce_row_density(value):
    if isinstance(value, str) and value != PROFILE:
        raise HardwareModelError(f"ce_row_density takes a share in (0, 1] or {PROFILE!r}; got {value!r}")
    if not isinstance(value, str) and not 0.0 < value <= 1.0:
        raise HardwareModelError(f"ce_row_density must lie in (0, 1]; got {value}")


def layer_densities(workload, ce_row_density) -> list:
    """Per conv/fc layer of a built-in ``workload``: (the rebuilt weights' density, Ce's row density).

    Parameters
    ----------
    workload : lean.hw.workload.Workload
        A net without SmartExchange layers.
    ce_row_density : float or str
        A share ``d`` in (0, 1] removes whole Ce rows, so both densities are ``d``. ``"smartdeal"`` prunes
        ``PRUNED_ROW_SHARES`` as the authors' code does: of a 3 x 3 conv, a share of (input channel, kernel row)
        rows (rounded up), each one Ce row; of a 1 x 1 conv, a share q of the input channels, so the weights keep
        1 - q, but a Ce row (three neighbouring channels) is all zero only when all three are pruned: lean takes
        the pruned channels as spread at random, 1 - q^3 of the rows kept; fc layers keep everything.

    Returns
    -------
    list of (float, float)
        One pair per conv/fc layer, in order.
    """
    _check_ce_row_density(ce_row_density)
    layers = workload.compute_layers()
    if not isinstance(ce_row_density, str):
        return [(ce_row_density, ce_row_density)] * len(layers)
    shares = PRUNED_ROW_SHARES.get(workload.name)
    if shares is None or len(shares) != len(layers):
        raise HardwareModelError(f"the {PROFILE} per-layer row pruning is known for the built-in workloads "
                                 f"{', '.join(PRUNED_ROW_SHARES)}; not for {workload.name!r}")
    out = []
    for layer, share in zip(layers, shares, strict=True):
        if layer.kind == "fc":
            out.append((1.0, 1.0))
            continue
        units = layer.c_per_group * (layer.r if layer.r > 1 else 1)
        pruned = math.ceil(units * share) / units
        out.append((1.0 - pruned, 1.0 - pruned) if layer.r > 1 else (1.0 - pruned, 1.0 - pruned ** 3))
    return out


def lane_max_ones(mean_ones: float, lanes: int = 16, bits: int = 16) -> float:
    """Expected largest count of one bits among ``lanes`` activations stepping together, each count Poisson with
    mean ``mean_ones`` (capped at ``bits``); at least 1 (a step takes a cycle)."""
    if mean_ones <= 0:
        return 1.0
    cdf, term, expected = 0.0, math.exp(-mean_ones), 0.0
    for k in range(bits + 1):
        below = cdf ** lanes
        cdf = min(1.0, cdf + term)
        expected += k * (cdf ** lanes - below)
        term *= mean_ones / (k + 1)
    expected += bits * (1.0 - cdf ** lanes)
    return max(1.0, expected)


def _se_stored_bits(layer, row_density):
    """Bits per weight of a layer decomposed as SmartExchange stores it: each filter's weights as rows of 3
    (a 3 x 3 kernel's rows; other kernels and fc rows cut into threes), each kept row 3 Ce codes of 4 bits, one
    index bit per row, and an 8-bit 3 x 3 basis per block of up to 192 rows (64 input channels)."""
    per_filter = layer.c_per_group * layer.r * layer.s if layer.kind == "conv" else layer.c
    rows = -(-per_filter // 3)
    bits = rows * (3 * 4 * row_density + 1) + -(-rows // 192) * 9 * 8
    return bits / per_filter


def treat(design: str, layer, densities: tuple = (1.0, 1.0)):
    """``layer`` as ``design`` sees it (module docstring); ``densities`` (weights, Ce rows) of a layer without
    SmartExchange's form, from ``layer_densities``."""
    se = layer.rebuild_adds > 0
    weight_density, ce_row_density = densities
    # SmartExchange's index selector skips zero Ce rows, and activation rows only when all zero (rare): lean
    # gives it no activation skipping
    if design == CONTROL:
        return replace(layer, w_bits=8, a_bits=8, w_density=1.0, a_density=1.0, w_stored_bits=None, rebuild_adds=0)
    if design == "smartexchange":
        if se:
            return replace(layer, w_bits=8, a_bits=8, a_density=1.0)
        weights = layer.weight_count
        adds = int(round(weights * ce_row_density * 2))  # three terms a rebuilt weight: two adds (module doc)
        return replace(layer, w_bits=8, a_bits=8, w_density=ce_row_density, a_density=1.0,
                       w_stored_bits=_se_stored_bits(layer, ce_row_density), rebuild_adds=adds)
    dense = replace(layer, w_bits=16, a_bits=16, w_stored_bits=None, rebuild_adds=0,
                    w_density=layer.w_density * (1.0 if se else weight_density))
    if design == "cambricon-x":
        return replace(dense, a_density=1.0)
    if design == "scnn":
        return dense
    return replace(dense, w_density=1.0, a_density=1.0)      # DianNao, Bit-pragmatic: zeros multiplied


def compare(workload, designs=tuple(DESIGNS), reference: str = "diannao", batch: int | None = None,
            ce_row_density: "float | str" = 1.0, ones_per_activation: float = ONES_PER_ACTIVATION,
            effort: str = "quick") -> dict:
    """Each design's cycles and energy on ``workload``, and its speed-up and energy efficiency over
    ``reference``.

    Returns
    -------
    dict
        ``workload``, ``reference``, ``designs`` (per design: ``cycles``, ``latency_ms``, ``energy_pj``,
        ``energy_breakdown_pj``, ``dram_bytes``, ``speedup``, ``energy_efficiency``, ``layers``), ``assumptions``.
    """
    unknown = [d for d in designs if d not in DESIGNS]
    if unknown or not designs:
        raise HardwareModelError(f"unknown design(s) {', '.join(unknown) or '(none)'}; choose from: "
                                 f"{', '.join(DESIGNS)}")
    if reference not in designs:
        raise HardwareModelError(f"the reference {reference!r} must be one of the designs compared")
    _check_ce_row_density(ce_row_density)     # here too: a workload with SmartExchange layers never uses it
    wl = load_workload(workload, batch=batch)
    has_se = any(layer.rebuild_adds > 0 for layer in wl.compute_layers())
    densities = [(1.0, 1.0)] * len(wl.compute_layers()) if has_se else layer_densities(wl, ce_row_density)
    out = {}
    steps = lane_max_ones(ones_per_activation)
    runs = list(designs) + ([CONTROL] if "smartexchange" in designs else [])
    for name in runs:
        acc = load_accelerator(DESIGNS.get(name, "smartexchange"))
        seen = Workload(wl.name, tuple(treat(name, layer, dens) for layer, dens in
                                       zip(wl.compute_layers(), densities, strict=True)))
        pred = predict(seen, acc, objective="energy", effort=effort).to_dict()
        layers = pred["layers"]
        if name == "bit-pragmatic":
            layers = [_pragmatic(row, steps, ones_per_activation) for row in layers]
        if name == "scnn":
            layers = [_scnn(row, layer) for row, layer in zip(layers, seen.layers, strict=True)]
        cycles = sum(row["cycles"] for row in layers)
        breakdown = {}
        for row in layers:
            for k, v in row["energy_breakdown_pj"].items():
                breakdown[k] = breakdown.get(k, 0.0) + v
        out[name] = {"accelerator": acc.name, "cycles": cycles, "latency_ms": cycles / (acc.clock_mhz * 1e3),
                     "energy_pj": sum(breakdown.values()), "energy_breakdown_pj": breakdown,
                     "dram_bytes": sum(row["dram_bytes"] for row in layers), "macs": pred["total"]["macs"],
                     "layers": [{k: row[k] for k in ("name", "cycles", "energy_pj", "dram_bytes", "bound")}
                                for row in layers]}
    ref = out[reference]
    for r in out.values():
        r["speedup"] = ref["latency_ms"] / r["latency_ms"]
        r["energy_efficiency"] = ref["energy_pj"] / r["energy_pj"]
    return {"workload": wl.name, "batch": wl.layers[0].n, "reference": reference, "designs": out,
            "smartexchange_layers": has_se,
            "assumptions": {"clock": "1 GHz and Horowitz 45 nm energies for every design",
                            "ce_row_density": None if has_se else ce_row_density,
                            **({} if has_se else _kept(wl, densities)),
                            "ones_per_activation": ones_per_activation, "pragmatic_steps_per_16": steps,
                            "accelerator_files": {n: DESIGNS[n] for n in designs}}}


def _kept(wl, densities):
    """The shares of the weights and of the Ce rows kept over the whole net (weighted by each layer's weights)."""
    counts = [layer.weight_count for layer in wl.compute_layers()]
    total = sum(counts)
    return {"weights_kept": sum(c * d[0] for c, d in zip(counts, densities, strict=True)) / total,
            "ce_rows_kept": sum(c * d[1] for c, d in zip(counts, densities, strict=True)) / total}


def _scnn(row, layer):
    """A layer's SCNN result with its compute cycles from SCNN's own cycle model (``scnn.layer_cycles``:
    fragmentation into 4 x 4 steps, the busiest PE of each tile, accumulator-bank conflicts) instead of the
    loop-nest predictor's count of non-zero products."""
    return _with_compute(dict(row), scnn.layer_cycles(layer, layer.w_density, layer.a_density)["cycles"])


def _with_compute(row, compute):
    """``row`` with its compute cycles replaced, bound by them or by DRAM. The predictor's buffer bound is left
    out for these two designs: it prices their buffers as DianNao's operand stream (every MAC's operands from the
    buffer), where Bit-pragmatic shares each weight among 16 windows and SCNN's steps read 4 weights and 4
    activations for 16 products into its own accumulator banks; their cycle models count that delivery."""
    row["compute_cycles"] = compute
    row["cycles"] = max(compute, row["dram_cycles"])
    row["bound"] = "compute" if compute >= row["dram_cycles"] else "dram"
    return row


def _pragmatic(row, steps, ones):
    """A dense DaDianNao-tile layer result turned Bit-pragmatic: 16 windows at one essential bit a cycle, each
    multiply as ``ones`` shift-and-adds at the accumulator width."""
    row = _with_compute(dict(row), row["compute_cycles"] * steps / 16)
    breakdown = dict(row["energy_breakdown_pj"])
    mult = tech.mac_energy_pj(16)
    breakdown["mac"] = breakdown["mac"] * ones * tech.add_energy_pj(32) / mult
    row["energy_breakdown_pj"] = breakdown
    row["energy_pj"] = sum(breakdown.values())
    return row
