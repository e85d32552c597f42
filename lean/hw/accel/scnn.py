"""SCNN's compute cycles on a layer, by the rules of its published cycle model.

Parashar et al., "SCNN: an accelerator for compressed-sparse convolutional neural networks", ISCA 2017: 8 x 8 PEs,
each holding a planar tile of the input (PT-IS-CP-sparse), multiply every non-zero activation of their tile by
every non-zero weight of an output-channel group, F = 4 weights by I = 4 activations a cycle, and scatter the 16
products into 32 accumulator banks. Three things make it slower than its multiplier count, and the loop-nest
predictor (``lean.hw.predictor``) sees none of them:

- **fragmentation**: a step takes whole groups of 4 activations and 4 weights, so a PE with 5 non-zero
  activations spends as long as one with 8;
- **imbalance**: the PEs work in lock step on each (input channel, output-channel group) tile, so the busiest
  PE sets the pace; edge PEs of a small map hold less;
- **bank conflicts**: products landing in the same accumulator bank in one step are added one after another.

lean follows DNNsim's SCNN model (isakedo/DNNsim, ``core/src/SCNN.cpp``; the paper's own simulator is not
public): output channels in groups of ``Kc = 6144 / (tile width x tile height)`` (one for a depthwise conv), an
accumulator bank ``map_accumulator(k, w, h)`` as DNNsim hashes it, a fully connected layer as DNNsim maps it
(its inputs as 16 x 16 maps, each output a 16 x 16 kernel: of a step's products only those of matching
positions count), a step's cycles the largest number of its
products in one bank (at least 1), a tile's cycles its busiest PE's. Where DNNsim reads the real zeros of a
model's activations and weights, lean draws them at the layer's densities (seeded: the same figures every run)
and, to bound the work, simulates a sample of tiles and, in the busiest PE, up to ``MAX_STEPS`` steps, whose mean
cycles per step price all of its steps. (``layer_cycles``.) Also left out of DNNsim's model: the cycles that
send partial sums across PE borders (halos), and the quirk of C's integer division, which sends a product just
left of an output map into its first column at stride 2 (lean drops it).
"""

import math

import numpy as np

PE_GRID = 8            # Wt = Ht: 8 x 8 PEs
WEIGHTS = ACTS = 4     # weights (F) and activations (I) a step
OUT_ACC_WORDS = 6144   # accumulator words per PE (DNNsim's default)
BANKS = 32
MAX_STEPS = 2048
TILE_SAMPLES = 3


def bank_of(k, w, h):
    """DNNsim's accumulator bank of output (k, w, h)."""
    return ((((k & 4) << 2) ^ ((w & 2) << 3) ^ ((h & 2) << 3)) + ((w & 1) << 3) + ((h & 1) << 2) + (k & 3)) % BANKS


def _geometry(layer):
    """Input and output sizes, padded input tiles and the output-channel group, as DNNsim sets them."""
    if layer.kind == "fc":
        # DNNsim's mapping of a fully connected layer: the inputs, padded to a multiple of 256, as channels of
        # 16 x 16 maps, each output a 16 x 16 kernel over them (a 1 x 1 output map)
        c, k, r, s, stride, pad, x, y = math.ceil(layer.c / 256), layer.k, 16, 16, 1, 0, 16, 16
        c_per_group = c
    else:
        c, k, r, s, stride, pad = layer.c, layer.k, layer.r, layer.s, layer.stride, layer.padding
        x, y, c_per_group = layer.h + 2 * pad, layer.w + 2 * pad, layer.c_per_group
    out_w, out_h = (x - r) // stride + 1, (y - s) // stride + 1
    group = max(1, OUT_ACC_WORDS // (math.ceil(out_w / PE_GRID) * math.ceil(out_h / PE_GRID)))
    if c_per_group == 1 and c != 1:
        group = 1                                     # depthwise: one output channel per input channel
    tile_x, tile_y = math.ceil(x / PE_GRID), math.ceil(y / PE_GRID)
    return {"c_per_group": c_per_group, "k": k, "r": r, "s": s, "stride": stride, "x": x, "y": y,
            "out_w": out_w, "out_h": out_h, "group": group, "tile_x": tile_x, "tile_y": tile_y}


def _max_bank_load(ids):
    """Per step (rows of 16 bank ids; invalid products carry distinct sentinels), the most products in one bank."""
    ids = np.sort(ids, axis=1)
    same = ids[:, 1:] == ids[:, :-1]
    run = best = np.ones(len(ids), dtype=np.int64)
    for j in range(same.shape[1]):
        run = np.where(same[:, j], run + 1, 1)
        best = np.maximum(best, run)
    return best


def _pe_steps_sim(acts, wgts, g, k0):
    """Mean cycles a step over (up to MAX_STEPS of) one PE's steps: ``acts`` (x, y) and ``wgts`` (k, r, s)
    non-zeros in DNNsim's order."""
    ga, gw = -(-len(acts) // ACTS), -(-len(wgts) // WEIGHTS)
    if ga == 0 or gw == 0:
        return 1.0
    gw = min(gw, MAX_STEPS)                      # the first steps stand for all of them
    ga = max(1, min(ga, MAX_STEPS // gw))
    acts, wgts = acts[: ga * ACTS], wgts[: gw * WEIGHTS]
    pad_a, pad_w = ga * ACTS - len(acts), gw * WEIGHTS - len(wgts)
    x = np.concatenate([acts[:, 0], np.full(pad_a, -10 ** 6)])
    y = np.concatenate([acts[:, 1], np.full(pad_a, -10 ** 6)])
    k = np.concatenate([wgts[:, 0] + k0, np.zeros(pad_w, dtype=np.int64)])
    r = np.concatenate([wgts[:, 1], np.full(pad_w, 10 ** 6)])
    s = np.concatenate([wgts[:, 2], np.full(pad_w, 10 ** 6)])
    dx, dy = x[:, None] - r[None, :], y[:, None] - s[None, :]
    w_out, h_out = dx // g["stride"], dy // g["stride"]
    valid = (dx >= 0) & (dy >= 0) & (w_out < g["out_w"]) & (h_out < g["out_h"])
    ids = bank_of(k[None, :], np.maximum(w_out, 0), np.maximum(h_out, 0))
    # steps: (activation group, weight group) -> its 16 products; invalid ones get distinct sentinels
    ids = ids.reshape(ga, ACTS, gw, WEIGHTS).transpose(0, 2, 1, 3).reshape(ga * gw, ACTS * WEIGHTS)
    valid = valid.reshape(ga, ACTS, gw, WEIGHTS).transpose(0, 2, 1, 3).reshape(ga * gw, ACTS * WEIGHTS)
    ids = np.where(valid, ids, BANKS + np.arange(ACTS * WEIGHTS))
    return float(_max_bank_load(ids).mean())


def _tile(g, acts_by_pe, positions, kernel_by_class, size, k0, w_density, a_density, rng):
    """One (input channel, output-channel group of ``size``) tile, its zeros drawn: its cycles (the busiest
    PE's) and that PE's cycles per step (None when no PE has work)."""
    weights_per_class = size * np.array([len(kernel) for kernel in kernel_by_class])
    na = rng.binomial(positions, a_density)
    # every PE multiplies by the same broadcast weights: one draw of them for the tile
    nw = rng.binomial(weights_per_class, w_density)
    steps = (-(-na // ACTS)) * (-(-nw // WEIGHTS))
    per_pe = steps.sum(axis=1)
    busiest = int(np.argmax(per_pe))
    if per_pe[busiest] == 0:
        return 0.0, None
    # the busiest PE's steps, simulated product by product in each stride class
    cost = 0.0
    for c, (mine, kernel) in enumerate(zip(acts_by_pe[busiest], kernel_by_class, strict=True)):
        if steps[busiest, c] == 0:
            continue
        acts = mine[np.sort(rng.choice(len(mine), na[busiest, c], replace=False))]
        everything = np.column_stack([np.tile(np.arange(size), len(kernel)),
                                      np.repeat(kernel, size, axis=0)])        # (k, r, s), k fastest
        wgts = everything[np.sort(rng.choice(len(everything), nw[c], replace=False))]
        cost += steps[busiest, c] * _pe_steps_sim(acts, wgts, g, k0)
    return cost, cost / per_pe[busiest]


def layer_cycles(layer, w_density: float, a_density: float, *, seed: int = 0) -> dict:
    """SCNN's compute cycles for ``layer`` at these densities (module docstring).

    Parameters
    ----------
    layer : lean.hw.workload.LayerShape
        A conv or fc layer (``n`` images, run for ``fraction`` of them).
    w_density, a_density : float
        Shares of non-zero weights and input activations; zeros are drawn at random at these rates.
    seed : int
        Seed of the draws (the same figures every run).

    Returns
    -------
    dict
        ``cycles``; ``dense_cycles`` (every weight and real input non-zero); ``ideal_cycles`` (the non-zero
        products over all 1,024 multipliers); ``cycles_per_step`` in the busiest PEs (1: no bank conflict).
    """
    g = _geometry(layer)
    rng = np.random.default_rng(seed)
    stride = g["stride"]
    pad = 0 if layer.kind == "fc" else layer.padding
    real_x, real_y = (g["x"], g["y"]) if layer.kind == "fc" else (layer.h, layer.w)
    classes = [(sx, sy) for sx in range(stride) for sy in range(stride)]
    # the kernel positions of each stride class, and per PE the input positions its planar tile holds in each
    # (padding and the grid's rounding are zeros: never multiplied)
    kernel = np.array([(rr, ss) for rr in range(g["r"]) for ss in range(g["s"])], dtype=np.int64)
    kernel_by_class = [kernel[((kernel[:, 0] + pad) % stride == sx) & ((kernel[:, 1] + pad) % stride == sy)]
                       for sx, sy in classes]
    acts_by_pe = []
    for pe in range(PE_GRID * PE_GRID):
        px, py = divmod(pe, PE_GRID)
        xs = np.arange(max(px * g["tile_x"], pad), min((px + 1) * g["tile_x"], pad + real_x))
        ys = np.arange(max(py * g["tile_y"], pad), min((py + 1) * g["tile_y"], pad + real_y))
        grid = np.array([(a, b) for a in xs for b in ys], dtype=np.int64).reshape(-1, 2)
        acts_by_pe.append([grid[(grid[:, 0] % stride == sx) & (grid[:, 1] % stride == sy)] for sx, sy in classes])
    positions = np.array([[len(acts) for acts in per_class] for per_class in acts_by_pe], dtype=np.int64)
    # the output-channel groups come in at most two sizes (the last may be short); each size's tiles sampled
    sizes = {}
    for k0 in range(0, g["k"], g["group"]):
        size = min(g["group"], g["k"] - k0)
        sizes.setdefault(size, [k0, 0])[1] += 1
    cycles = dense = 0.0
    factors = []
    for size, (k0, count) in sizes.items():
        weights_per_class = size * np.array([len(k) for k in kernel_by_class])
        tile_dense = ((-(-positions // ACTS)) * (-(-weights_per_class // WEIGHTS))).sum(axis=1).max()
        sampled = []
        for _ in range(TILE_SAMPLES):
            cost, factor = _tile(g, acts_by_pe, positions, kernel_by_class, size, k0, w_density, a_density, rng)
            sampled.append(cost)
            if factor is not None:
                factors.append(factor)
        cycles += count * g["c_per_group"] * float(np.mean(sampled))
        dense += count * g["c_per_group"] * int(tile_dense)
    n = layer.n * layer.fraction
    products = layer.macs * layer.fraction * w_density * a_density
    return {"cycles": n * cycles, "dense_cycles": n * dense,
            "ideal_cycles": products / (PE_GRID * PE_GRID * WEIGHTS * ACTS),
            "cycles_per_step": float(np.mean(factors)) if factors else 1.0}
