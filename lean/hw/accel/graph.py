"""AutoDNNchip's graph of an accelerator: IP nodes with their own latency, energy and resource models, joined by
tensor edges with a precision; and the Chip Predictor's two modes on that graph.

After Xu et al., "AutoDNNchip: An Automated DNN Chip Predictor and Builder for Both FPGAs and ASICs", FPGA 2020.
An accelerator template is a directed graph. Its nodes are IPs: data movers (a DRAM reader and writer), memories
(banks, buffers), compute (a PE array) and control. Its edges say which tensor flows from one IP to the next and
at what precision. The predictor evaluates the graph layer by layer in two modes:

- **coarse** (``coarse``): analytical. For each IP, the words on its edges times their precision give its cycles
  and its energy for the layer. The IPs work as a pipeline, so the slowest one bounds the layer; IPs that share a
  port (the reader and the writer share the DRAM interface) take turns, so their cycles add. Fast enough, on NumPy
  arrays of candidates, to rank hundreds of thousands of design points.
- **fine** (``simulate``): event-driven. A layer runs as buffer passes. Each active IP fires a pass when the IPs
  that feed it have finished that pass, when it (or its port) is free, and when the memory it fills has a free
  slot: a double-buffered memory (``slots=2``) takes pass p only after its consumer has finished pass p - 2.
  This exposes what the coarse mode averages away: a pipeline's fill and drain, and loads that wait for the port.

Resources (``resources``: DSP slices, BRAM18s, LUTs, flip-flops) and ASIC area (``area_mm2``) are each IP's own,
summed over the graph. A design is a dict of fields: numbers for one design point, or NumPy arrays of them (the
search's coarse ranking evaluates thousands at once with the same code).

lean registers two templates (``TEMPLATES``), both of which ``rtl.py`` writes as Verilog, so that every design
the search picks can be built: ``os-systolic`` (``OS_SYSTOLIC``), the output-stationary array that drains each
tile before computing the next, and ``os-systolic-overlap`` (``OS_SYSTOLIC_OVERLAP``), the same graph whose array
IP has shadow accumulators, so that its drain overlaps the next tile's compute (more flip-flops, fewer cycles).
Their resource models are the ones ``rtl.predict_resources`` reports and Yosys checks. AutoDNNchip's library has
more templates (and IPs from vendors' tools); a new template here is a new ``Template`` with its IPs, edges and
the flows of a layer on it.
"""

import functools
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from .. import tech


def _compute_cycles(k, rows, pe_cols):
    """A tile's cycles before its drain, from the controller (``rtl.py``): 1 to clear, ``k + rows + pe_cols + 2``
    to feed the skewed operands through (the last PE's last product lands ``rows + pe_cols`` cycles after its
    first, behind one cycle of block-RAM read)."""
    return 1 + k + rows + pe_cols + 2


def tile_cycles(k, rows, pe_cols, cols):
    """Cycles of one output tile on the ``os-systolic`` array: its compute (``_compute_cycles``), then ``rows x
    cols`` to drain. Numbers or NumPy arrays."""
    return _compute_cycles(k, rows, pe_cols) + rows * cols


def overlap_period(k, rows, pe_cols, cols):
    """The ``os-systolic-overlap`` array's cycles a tile and its one-off rest, from its controller (``rtl.py``):
    a tile computes for ``c`` cycles (``_compute_cycles``) and is handed to the drain engine, which empties its
    ``rows x cols`` shadow sums while the next tile computes; a hand-off waits for the engine's last cycle, so
    tiles follow each other every ``max(c, rows x cols + 1)`` cycles; the first tile's compute, the last one's
    drain, its hand-off and the controller's wait add ``c + rows x cols + 3`` less one period. Numbers or NumPy
    arrays."""
    compute, drain = _compute_cycles(k, rows, pe_cols), rows * cols
    period = np.maximum(compute, drain + 1)
    return period, compute + drain + 3 - period


def overlap_cycles(tiles, k, rows, pe_cols, cols):
    """Cycles of ``tiles`` output tiles on the ``os-systolic-overlap`` array (``overlap_period``)."""
    period, rest = overlap_period(k, rows, pe_cols, cols)
    return tiles * period + rest


def bram18(width, depth):
    """18 Kb block RAMs for a ``width x depth`` memory: the cheapest of the BRAM18 aspect ratios (16K x 1, 8K x 2,
    4K x 4, 2K x 9, 1K x 18, 512 x 36), tiled in width and depth (Xilinx UG573). Numbers or NumPy arrays."""
    best = None
    for w, d in ((1, 16384), (2, 8192), (4, 4096), (9, 2048), (18, 1024), (36, 512)):
        count = np.ceil(width / w) * np.ceil(depth / d)
        best = count if best is None else np.minimum(best, count)
    return best


# ------------------------------------------------------------------------------------------ the graph


@dataclass(frozen=True)
class Edge:
    """A tensor moving from one IP to another, ``precision`` naming the design field that holds its bits a word."""

    tensor: str
    src: str
    dst: str
    precision: str


@dataclass(frozen=True)
class Flow:
    """What one IP handles in a layer (or a pass): bits in and out over its edges, and the layer's compute work
    (``tiles`` of the array, reduction length ``k``, ``macs``, and ``tail``: 1 where the layer's one-off fill and
    drain fall, its last pass; 0 elsewhere)."""

    bits_in: object
    bits_out: object
    tiles: object
    k: object
    macs: object
    tail: object = 1


def _nothing(*_):
    return 0.0


def _no_resources(_):
    return {}


@dataclass(frozen=True)
class IP:
    """A node: its kind, its models (``cycles(d, flow, bytes_per_cycle)``, ``energy_pj(d, flow)``,
    ``resources(d)`` a dict, ``area_um2(d)``), the port it shares with others (None: its own), and, for a memory,
    the passes it can hold (``slots``)."""

    name: str
    kind: str
    cycles: Callable = _nothing
    energy_pj: Callable = _nothing
    resources: Callable = _no_resources
    area_um2: Callable = _nothing
    port: str | None = None
    slots: int = 0

    def __post_init__(self):
        if self.kind == "memory" and self.slots < 1:
            raise ValueError(f"IP {self.name!r}: a memory holds at least one pass (slots >= 1)")

    @property
    def active(self) -> bool:
        """Whether the IP takes time of its own (a mover or compute), rather than holding data or controlling."""
        return self.kind not in ("memory", "control")


@dataclass(frozen=True)
class Template:
    """An accelerator template: IPs, edges, and the flows of a layer on it. ``flows(d, layer)`` gives the words on
    each edge (by tensor) and the compute work for a whole layer; ``passes(d, layer)`` the same, one pass at a
    time (numbers only: the fine mode). A layer is ``(groups, m, k, n)``, its im2col product per group."""

    name: str
    ips: tuple
    edges: tuple
    flows: Callable
    passes: Callable

    def ip(self, name: str) -> IP:
        for ip in self.ips:
            if ip.name == name:
                return ip
        raise KeyError(f"template {self.name} has no IP {name!r}; it has {', '.join(i.name for i in self.ips)}")

    def describe(self) -> dict:
        """The graph as data: IPs (name, kind, port, slots) and edges (tensor, from, to, precision)."""
        return {"template": self.name,
                "ips": [{"name": ip.name, "kind": ip.kind, "port": ip.port, "slots": ip.slots} for ip in self.ips],
                "edges": [{"tensor": e.tensor, "from": e.src, "to": e.dst, "precision": e.precision}
                          for e in self.edges]}

    def flow_of(self, d: dict, words: dict, work: dict) -> dict:
        """Each IP's ``Flow`` given the words on every edge."""
        bits_in, bits_out = {ip.name: 0.0 for ip in self.ips}, {ip.name: 0.0 for ip in self.ips}
        for e in self.edges:
            bits = words[e.tensor] * d[e.precision]
            bits_out[e.src] = bits_out[e.src] + bits
            bits_in[e.dst] = bits_in[e.dst] + bits
        return {ip.name: Flow(bits_in[ip.name], bits_out[ip.name], work["tiles"], work["k"], work["macs"],
                              work.get("tail", 1))
                for ip in self.ips}


def bytes_per_cycle(target: dict) -> float:
    """The DRAM port's bytes a cycle at the target's bandwidth and clock."""
    return target["dram_gb_s"] * 1e9 / (target["clock_mhz"] * 1e6)


def coarse(template: Template, d: dict, layers, target: dict) -> dict:
    """The coarse mode (module docstring) over ``layers``.

    Parameters
    ----------
    template : Template
        The graph.
    d : dict
        The design's fields (``fields``), numbers or NumPy arrays of candidates.
    layers : sequence of (groups, m, k, n)
        Each layer's im2col product.
    target : dict
        ``dram_gb_s`` and ``clock_mhz``.

    Returns
    -------
    dict
        ``cycles`` and ``energy_pj`` in total, and ``by_ip``: each IP's cycles (summed over the layers) and
        energy. Arrays when ``d`` holds arrays.
    """
    bpc = bytes_per_cycle(target)
    total_cycles, total_energy = 0.0, 0.0
    by_ip = {ip.name: {"cycles": 0.0, "energy_pj": 0.0} for ip in template.ips}
    for layer in layers:
        words, work = template.flows(d, layer)
        flows = template.flow_of(d, words, work)
        by_port = {}
        for ip in template.ips:
            cycles = ip.cycles(d, flows[ip.name], bpc)
            energy = ip.energy_pj(d, flows[ip.name])
            by_ip[ip.name]["cycles"] = by_ip[ip.name]["cycles"] + cycles
            by_ip[ip.name]["energy_pj"] = by_ip[ip.name]["energy_pj"] + energy
            port = ip.port or ip.name
            by_port[port] = by_port.get(port, 0.0) + cycles
            total_energy = total_energy + energy
        total_cycles = total_cycles + functools.reduce(np.maximum, by_port.values())
    return {"cycles": total_cycles, "energy_pj": total_energy, "by_ip": by_ip}


def resources(template: Template, d: dict) -> dict:
    """DSP slices, BRAM18s, LUTs and flip-flops (``dsp``, ``bram18``, ``lut``, ``ff``): every IP's own, summed.
    ``d`` as ``coarse`` takes it."""
    total = {"dsp": 0, "bram18": 0, "lut": 0, "ff": 0}
    for ip in template.ips:
        for key, value in ip.resources(d).items():
            total[key] = total[key] + value
    return total


def area_mm2(template: Template, d: dict):
    """ASIC area at 45 nm in mm2: every IP's own, summed. ``d`` as ``coarse`` takes it."""
    return sum(ip.area_um2(d) for ip in template.ips) * 1e-6


def simulate(template: Template, d: dict, layers, target: dict) -> dict:
    """The fine mode (module docstring) for one design point.

    Parameters
    ----------
    template, layers, target
        As ``coarse`` takes them.
    d : dict
        One design's fields (numbers).

    Returns
    -------
    dict
        ``cycles``, ``seconds``, the share of the cycles the compute IP was busy (``array_busy``), and each
        active IP's busy cycles (``busy``).
    """
    bpc = bytes_per_cycle(target)
    active = [ip for ip in template.ips if ip.active]
    memories = {ip.name: ip for ip in template.ips if ip.kind == "memory"}
    # who waits for whom: an active IP's pass waits for the active IPs feeding it (directly or through a memory)
    # to finish that pass, and for the active IPs draining the memory it fills to free a slot
    feeds = {ip.name: set() for ip in active}
    slot_waits = {ip.name: set() for ip in active}
    for e in template.edges:
        if e.src in feeds and e.dst in feeds:
            feeds[e.dst].add(e.src)
        elif e.dst in memories and e.src in feeds:
            for out in template.edges:
                if out.src == e.dst and out.dst in feeds:
                    feeds[out.dst].add(e.src)
                    slot_waits[e.src].add((out.dst, memories[e.dst].slots))
    compute = next(ip.name for ip in active if ip.kind == "pe-array")
    total, busy = 0.0, {ip.name: 0.0 for ip in active}
    for layer in layers:
        durations = []
        for words, work in template.passes(d, layer):
            flows = template.flow_of(d, words, work)
            durations.append({ip.name: float(ip.cycles(d, flows[ip.name], bpc)) for ip in active})
        finish = {ip.name: [] for ip in active}
        free = {}
        n = len(durations)
        while True:
            best = None
            for rank, ip in enumerate(active):
                p = len(finish[ip.name])
                if p == n:
                    continue
                waits = [finish[up] for up in feeds[ip.name]]
                slots = [(finish[down], p - depth) for down, depth in slot_waits[ip.name] if p - depth >= 0]
                if any(len(f) <= p for f in waits) or any(len(f) <= q for f, q in slots):
                    continue
                start = max([free.get(ip.port or ip.name, 0.0)] + [f[p] for f in waits] + [f[q] for f, q in slots])
                if best is None or (start, p, rank) < best[:3]:
                    best = (start, p, rank, ip)
            if best is None:
                if any(len(f) < n for f in finish.values()):
                    raise RuntimeError(f"template {template.name}: its IPs wait on each other (a cycle in the graph)")
                break
            start, p, _, ip = best
            end = start + durations[p][ip.name]
            finish[ip.name].append(end)
            free[ip.port or ip.name] = end
            busy[ip.name] += durations[p][ip.name]
        total += max((f[-1] for f in finish.values() if f), default=0.0)
    return {"cycles": total, "seconds": total / (target["clock_mhz"] * 1e6),
            "array_busy": busy[compute] / total if total else 0.0, "busy": busy}


# ------------------------------------------------------------------------------------------ os-systolic


def _pe_cols(d):
    """Physical PE columns: two output columns share a PE when packed."""
    return d["cols"] // (1 + d["pack"])


def _pes(d):
    return d["rows"] * _pe_cols(d)


def _mac_energy_pj(bits):
    """Horowitz's 45 nm MAC at each candidate's width (8 or 16 bits: the widths the search offers)."""
    bits = np.asarray(bits)
    return np.where(bits <= 8, tech.mac_energy_pj(8), tech.mac_energy_pj(16))


def _banks(width, depth, count):
    """``count`` banks of ``width x depth``; a bank of under 1 Kb stays in LUT RAM (no BRAM)."""
    return count * np.where(width * depth >= 1024, bram18(width, depth), 0)


def _storage_um2(bits):
    return bits / 8 * tech.AREA["45nm"]["storage_um2_per_byte"].value


def _mac_area_um2(bits):
    bits = np.asarray(bits)
    return np.where(bits <= 8, tech.mac_area_um2("45nm", 8), tech.mac_area_um2("45nm", 16))


def _os_geometry(d, m, k, n):
    """Output tiles and buffer passes of an ``(m x k) @ (k x n)`` product: the input banks hold ``input_words``
    words each, so the im2col rows are split into ``m_passes``; the weights likewise into ``w_passes``."""
    m_tiles, n_tiles = np.ceil(m / d["rows"]), np.ceil(n / d["cols"])
    m_passes = np.ceil(m_tiles * k / d["input_words"])
    w_passes = np.ceil(n_tiles * k / d["weight_words"])
    return m_tiles, n_tiles, m_passes, w_passes


def _os_flows(d, layer):
    """A layer's words on each edge. The inputs come from DRAM once when they fit the banks, else once per weight
    pass; the weights once; each output tile reads its rows' inputs and its columns' weights from the banks."""
    g, m, k, n = layer
    m_tiles, n_tiles, m_passes, w_passes = _os_geometry(d, m, k, n)
    words = {"inputs": g * m * k * np.where(m_passes > 1, w_passes, 1), "weights": g * k * n,
             "input operands": g * m * k * n_tiles, "weight operands": g * k * n * m_tiles,
             "sums": g * m * n, "outputs": g * m * n}
    return words, {"tiles": g * m_tiles * n_tiles, "k": k, "macs": g * m * k * n}


def _os_passes(d, layer):
    """The same flows, pass by pass: groups, then weight passes, then input passes. A pass loads its share of the
    inputs (all of them once, in a group's first pass, when they fit) and, first in a weight pass, its weights."""
    g, m, k, n = layer
    m_tiles, n_tiles, m_passes, w_passes = (int(v) for v in _os_geometry(d, m, k, n))
    share = m_passes * w_passes
    for group in range(g):
        for w_pass in range(w_passes):
            for m_pass in range(m_passes):
                load_inputs = m_passes > 1 or (w_pass == 0 and m_pass == 0)
                last = group == g - 1 and w_pass == w_passes - 1 and m_pass == m_passes - 1
                yield ({"inputs": m * k / m_passes if load_inputs else 0.0,
                        "weights": k * n / w_passes if m_pass == 0 else 0.0,
                        "input operands": m * k * n_tiles / share, "weight operands": k * n * m_tiles / share,
                        "sums": m * n / share, "outputs": m * n / share},
                       {"tiles": m_tiles * n_tiles / share, "k": k, "macs": m * k * n / share,
                        "tail": int(last)})


def _dram_cycles_out(d, f, bpc):
    return f.bits_out / 8 / bpc


def _dram_cycles_in(d, f, bpc):
    return f.bits_in / 8 / bpc


def _array_cycles(d, f, bpc):
    return f.tiles * tile_cycles(f.k, d["rows"], _pe_cols(d), d["cols"])


def _array_resources(d):
    """One DSP per PE (a packed PE's two products share it); LUTs for the accumulators that do not fold into the
    DSP (one per bit: Yosys maps the multiply, not the accumulate, on DSP48) and for the packed PEs' 27-bit
    pre-adders (27 each); flip-flops for the accumulators and the operand registers passed on."""
    lanes, pes = 1 + d["pack"], _pes(d)
    return {"dsp": pes, "lut": pes * lanes * d["acc_bits"] + d["pack"] * pes * 27,
            "ff": pes * (lanes * d["acc_bits"] + d["a_bits"] + lanes * d["w_bits"])}


def _output_resources(d):
    """The output buffer's BRAMs, its read register, and the drain multiplexer: ``acc_bits`` bits choosing among
    ``rows x cols`` sums, one LUT6 per four inputs per bit, as a 4:1 mux tree."""
    sums = d["rows"] * d["cols"]
    return {"bram18": bram18(d["acc_bits"], d["output_words"]), "ff": d["acc_bits"],
            "lut": np.where(sums > 1, d["acc_bits"] * np.ceil((sums - 1) / 3), 0)}


def _overlap_array_cycles(d, f, bpc):
    """``overlap_cycles`` spread over passes: each tile one period, and the one-off rest where the flow's ``tail``
    falls."""
    period, rest = overlap_period(f.k, d["rows"], _pe_cols(d), d["cols"])
    return f.tiles * period + f.tail * rest


def _overlap_array_resources(d):
    """The array's own resources plus a shadow register per sum (the drain engine reads these: no more LUTs in
    the drain multiplexer, which reads shadows instead of accumulators)."""
    own = _array_resources(d)
    return dict(own, ff=own["ff"] + d["rows"] * d["cols"] * d["acc_bits"])


OS_SYSTOLIC = Template(
    name="os-systolic",
    ips=(
        IP("dram_reader", "dram-reader", cycles=_dram_cycles_out, port="dram",
           energy_pj=lambda d, f: f.bits_out * tech.dram_energy_pj(1)),
        IP("input_banks", "memory", slots=2, energy_pj=lambda d, f: f.bits_out * tech.sram_energy_pj(1),
           resources=lambda d: {"bram18": _banks(d["a_bits"], d["input_words"], d["rows"]),
                                "ff": d["rows"] * d["a_bits"]},
           area_um2=lambda d: _storage_um2(d["rows"] * d["input_words"] * d["a_bits"])),
        IP("weight_banks", "memory", slots=2, energy_pj=lambda d, f: f.bits_out * tech.sram_energy_pj(1),
           resources=lambda d: {"bram18": _banks(d["w_bits"], d["weight_words"], d["cols"]),
                                "ff": d["cols"] * d["w_bits"]},
           area_um2=lambda d: _storage_um2(d["cols"] * d["weight_words"] * d["w_bits"])),
        IP("pe_array", "pe-array", cycles=_array_cycles, resources=_array_resources,
           energy_pj=lambda d, f: f.macs * _mac_energy_pj(np.maximum(d["a_bits"], d["w_bits"])),
           area_um2=lambda d: _pes(d) * (1 + d["pack"]) * _mac_area_um2(np.maximum(d["a_bits"], d["w_bits"]))),
        IP("output_buffer", "memory", slots=2, energy_pj=lambda d, f: f.bits_in * tech.sram_energy_pj(1),
           resources=_output_resources, area_um2=lambda d: _storage_um2(d["output_words"] * d["acc_bits"])),
        IP("dram_writer", "dram-writer", cycles=_dram_cycles_in, port="dram",
           energy_pj=lambda d, f: f.bits_in * tech.dram_energy_pj(1)),
        # address arithmetic: about 16 LUTs per 16-bit counter or adder, 24 of them; 8 counters' flip-flops
        IP("controller", "control", resources=lambda d: {"lut": 24 * 16, "ff": 8 * 16}),
    ),
    edges=(
        Edge("inputs", "dram_reader", "input_banks", "a_bits"),
        Edge("weights", "dram_reader", "weight_banks", "w_bits"),
        Edge("input operands", "input_banks", "pe_array", "a_bits"),
        Edge("weight operands", "weight_banks", "pe_array", "w_bits"),
        Edge("sums", "pe_array", "output_buffer", "acc_bits"),
        Edge("outputs", "output_buffer", "dram_writer", "acc_bits"),
    ),
    flows=_os_flows,
    passes=_os_passes,
)

# The same graph with the drain overlapped: shadow accumulators let the array compute the next tile while a drain
# engine empties the last one (a second controller's counters: its tile, row, column and output address).
OS_SYSTOLIC_OVERLAP = Template(
    name="os-systolic-overlap",
    ips=tuple(
        IP("pe_array", "pe-array", cycles=_overlap_array_cycles, resources=_overlap_array_resources,
           energy_pj=ip.energy_pj,
           area_um2=lambda d, own=ip.area_um2: own(d) + _storage_um2(d["rows"] * d["cols"] * d["acc_bits"]))
        if ip.name == "pe_array" else
        # the drain engine's counters and addresses (tile, row, column, output base and their captured copies)
        # on top of the controller's: 3 more 16-bit adders or comparators, 6 more 16-bit registers
        IP("controller", "control", resources=lambda d: {"lut": 27 * 16, "ff": 14 * 16})
        if ip.name == "controller" else ip
        for ip in OS_SYSTOLIC.ips),
    edges=OS_SYSTOLIC.edges, flows=_os_flows, passes=_os_passes,
)

TEMPLATES = {t.name: t for t in (OS_SYSTOLIC, OS_SYSTOLIC_OVERLAP)}


def template_of(design) -> Template:
    """The template of a ``rtl.DesignPoint``."""
    return TEMPLATES[design.template]


def fields(design) -> dict:
    """A ``rtl.DesignPoint`` as the dict of fields the models read."""
    return {"rows": design.rows, "cols": design.cols, "pack": int(design.pack_dsp), "a_bits": design.a_bits,
            "w_bits": design.w_bits, "acc_bits": design.acc_bits, "input_words": design.input_words,
            "weight_words": design.weight_words, "output_words": design.output_words}

