"""PRIME, ISAAC and TIMELY: energy, latency, throughput and area of a network's inference on ReRAM crossbars.

One model, three parameter sets (``ARCHS``). A layer's crossbar mapping (``mapping.crossbar_mapping``) gives the
geometry; the architecture's dataflow turns it into counts (``layer_counts``); each count is priced by one
per-action energy (``PimArch``'s ``e_*`` fields, pJ):

- crossbar reads (every crossbar, every input slice) x ``e_crossbar_read``;
- D/A conversions: one per row of every crossbar per slice, unless an analog input chain (TIMELY's X-subBufs)
  passes a converted input along ``input_chain`` crossbars: then one per input read per slice;
- A/D conversions: one per used column per slice per group of ``psum_chain`` crossbars whose currents add in
  analog down a column (TIMELY's P-subBufs and I-adders; 1 elsewhere), each with ``e_ad_extra`` (sample-and-hold,
  or charging + comparator) and a shift-and-add;
- input buffer reads: every window's inputs (``input_reads="window"``) or each input once (``"once"``: TIMELY's
  only-once input read, O2IR), once per ``input_chain`` crossbars sharing them; fetches into that buffer (PRIME
  fetches every read from its L2);
- digital partial sums across psum groups (a write and a read each), outputs written and moved on, activations,
  pooling; ``static_mw`` (ISAAC's HyperTransport links) over the time the pipeline spends per batch.

Latency: a crossbar read takes ``read_cycles`` clock cycles; a layer takes ``ceil(vectors / replicas) x slices``
reads (its groups side by side).
All layers stay on the chip (``crossbars``) and run as a pipeline, so a network that fits is replicated to balance
its stages (``replicate``: the slowest stage made as fast as the spare crossbars allow, ISAAC's policy); images/s
is the batch over the slowest stage. Peak figures (``peak``): every crossbar busy on a fully used tile of a large
fc layer (no window reuse), the way architects quote GOPs/s/mm2 and GOPs/W.

Sources: ``lean.hw.tech.PIM_COMPONENTS`` (ISAAC's Table I, TIMELY's Table II, Accelergy's derivations). Where no
paper gives a figure the field is derived from the design, listed in the arch's ``derived`` with how, and the
report prints that list. PRIME is TIMELY's baseline as TIMELY describes it (its buffers as ratios to TIMELY's
sub-buffers), in TIMELY's 65 nm technology, with as many crossbars as TIMELY (an assumption: TIMELY gives PRIME's
chip no crossbar count lean could read). ISAAC's energies per action are Table I's powers over the rates at
which ISAAC's design performs the action (one crossbar read per 100 ns, 16 one-bit input slices), so its peak
power approximates Table I when lean's counts match ISAAC's rates: the peak checks the counting, not the physics.

TIMELY's peak comes out near the paper's density (38.33 TOPs/s/mm2) but far above its 21.0 TOPs/W: lean reads
Table II's 2 KB buffer figures per 8-bit access, as Accelergy's library does (``benchmarks/pim_archs.py`` shows
the per-bit reading too). ``--set`` changes one field as given: derived figures (area, crossbar read energy) are
not re-derived from it.

TIMELY's ideas can be switched off one at a time (``ablate``): without analog local buffers (ALB) every crossbar
converts its own inputs and outputs and partial sums go through the digital buffer; without time-domain
interfaces (TDI) inputs are bit-serial through 1-bit DACs and outputs go through 8-bit ADCs (ISAAC's converters,
32 nm, not rescaled); without O2IR every window reads its inputs again.
"""

import dataclasses
import math
from dataclasses import dataclass

from ...errors import HardwareModelError
from .. import tech
from ..accelerator import convert_overrides, parse_overrides
from ..workload import load as load_workload
from .mapping import SIGNED_SCHEMES, crossbar_mapping

CATEGORIES = ("crossbar", "d/a", "a/d", "inputs", "psums", "outputs", "digital", "static")
IDEAS = ("alb", "tdi", "o2ir")


@dataclass(frozen=True)
class PimArch:
    """A ReRAM crossbar accelerator: geometry, dataflow, per-action energies (pJ), area (mm2) and sources."""

    name: str
    node: str
    clock_mhz: float
    crossbars: int              # on the chip
    xbar: int                   # rows and columns of a crossbar
    cell_bits: int
    weight_bits: int
    input_bits: int
    signed: str                 # "offset" or "differential"
    interface: str              # "voltage" (DAC/ADC) or "time" (DTC/TDC)
    slice_bits: int             # input bits per crossbar read (a DTC codes all 8 in one pulse)
    read_cycles: int            # clock cycles per crossbar read
    input_chain: int            # crossbars along a row sharing one input read (TIMELY: X-subBufs, ISAAC: an IMA)
    analog_input_chain: bool    # the chain passes converted inputs (one D/A per read), not digital ones
    psum_chain: int             # crossbars down a column adding currents before one A/D
    input_reads: str            # "window" or "once" (O2IR)
    fetch_per_read: bool        # every input buffer read is first fetched from the level above (PRIME's L2)
    e_crossbar_read: float
    e_da: float
    e_ad: float
    e_ad_extra: float
    e_shift_add: float
    e_row_drive: float          # per row per crossbar per slice: input register (ISAAC), X-subBuf (TIMELY)
    e_psum_analog: float        # per column per crossbar per slice in an analog chain: P-subBuf + I-adder
    e_input_read: float
    e_input_fetch: float
    e_psum_access: float
    e_output_write: float
    e_output_move: float
    e_activation: float
    e_pool: float
    static_mw: float
    area: tuple                 # ((component, mm2 on the chip), ...)
    derived: tuple              # ((field or component, how it was derived), ...)
    sources: str

    def area_mm2(self) -> float:
        """The chip's area: the sum of its components."""
        return float(sum(mm2 for _, mm2 in self.area))

    def slices(self) -> int:
        """Crossbar reads per input vector."""
        return -(-self.input_bits // self.slice_bits)

    def to_dict(self) -> dict:
        """Every field by name, and the area (JSON-able)."""
        out = dataclasses.asdict(self)
        out["area"] = {k: v for k, v in self.area}
        out["derived"] = {k: v for k, v in self.derived}
        out["area_mm2"] = self.area_mm2()
        return out

    def with_overrides(self, **values) -> "PimArch":
        """A copy with fields replaced (strings from ``--set`` converted); unknown names and bad values refused."""
        settable = {f.name: f.type for f in dataclasses.fields(self)
                    if f.name not in ("area", "derived", "sources", "name")}
        arch = dataclasses.replace(self, **convert_overrides(values, settable, "PIM", "choose from"))
        arch.check()
        return arch

    def check(self):
        """Refuse values no crossbar can have (one ``HardwareModelError`` naming the field)."""
        for key in ("crossbars", "xbar", "cell_bits", "weight_bits", "input_bits", "slice_bits", "read_cycles",
                    "input_chain", "psum_chain"):
            if getattr(self, key) < 1:
                raise HardwareModelError(f"{key} must be at least 1; got {getattr(self, key)}")
        if not self.clock_mhz > 0 or not math.isfinite(self.clock_mhz):
            raise HardwareModelError(f"clock_mhz must be positive; got {self.clock_mhz}")
        for f in dataclasses.fields(self):
            if f.name.startswith("e_") or f.name == "static_mw":
                v = getattr(self, f.name)
                if not (v >= 0 and math.isfinite(v)):
                    raise HardwareModelError(f"{f.name} must be a finite energy >= 0; got {v}")
        if self.signed not in SIGNED_SCHEMES:
            raise HardwareModelError(f"signed must be one of {', '.join(SIGNED_SCHEMES)}; got {self.signed!r}")
        if self.interface not in ("voltage", "time"):
            raise HardwareModelError(f"interface must be voltage or time; got {self.interface!r}")
        if self.input_reads not in ("window", "once"):
            raise HardwareModelError(f"input_reads must be window or once; got {self.input_reads!r}")


def _pc(table, key):
    return tech.PIM_COMPONENTS[table][key].value


# ------------------------------------------------------------------------------------------ the three designs

def isaac(bits: int = 16) -> PimArch:
    """ISAAC (Shafiee et al., ISCA 2016, corrected): 168 tiles x 12 IMAs x 8 crossbars of 128 x 128 2-bit cells,
    1-bit DACs, 8-bit ADCs, one read per 100 ns at 1.2 GHz, eDRAM per tile, 16-bit weights and inputs."""
    t1 = "isaac-table1"
    reads_per_s = 1e7                                       # one crossbar read per 100 ns
    rows_per_s = 8 * 128 * reads_per_s                      # rows driven (and columns converted) per IMA per s
    outputs_per_s = 12 * 8 * (128 // 8) * reads_per_s / 16  # 16-bit outputs per tile per s at peak
    value_bits = bits                                       # eDRAM, bus and router move values of this width
    ima, tile, chip = 168 * 12, 168, 1
    area = []
    for key, count in (("ima_adc", ima), ("ima_dac", ima), ("ima_sample_hold", ima), ("ima_crossbars", ima),
                       ("ima_shift_add", ima), ("ima_input_register", ima), ("ima_output_register", ima),
                       ("tile_edram", tile), ("tile_bus", tile), ("tile_router", tile), ("tile_sigmoid", tile),
                       ("tile_shift_add", tile), ("tile_maxpool", tile), ("tile_output_register", tile),
                       ("chip_hypertransport", chip)):
        area.append((key, count * _pc(t1, key + "_mm2")))
    edram_value = _pc("isaac", "edram_256b_pj") * value_bits / 256
    bus_value = _pc("isaac", "edram_bus_bit_pj") * value_bits
    router_value = _pc("isaac", "router_256b_pj") * value_bits / 256
    return PimArch(
        name="isaac", node="32nm", clock_mhz=1200.0, crossbars=168 * 12 * 8, xbar=128, cell_bits=2,
        weight_bits=bits, input_bits=bits, signed="offset", interface="voltage", slice_bits=1, read_cycles=120,
        input_chain=8, analog_input_chain=False, psum_chain=1, input_reads="window", fetch_per_read=False,
        e_crossbar_read=_pc(t1, "ima_crossbars_mw") * 1e-3 / (8 * reads_per_s) * 1e12,
        e_da=_pc("isaac", "dac_1b_pj"), e_ad=_pc("isaac", "adc_8b_pj"),
        e_ad_extra=_pc(t1, "ima_sample_hold_mw") * 1e-3 / rows_per_s * 1e12,
        e_shift_add=_pc("isaac", "shift_add_pj") + _pc(t1, "ima_output_register_mw") * 1e-3 / rows_per_s * 1e12,
        e_row_drive=_pc(t1, "ima_input_register_mw") * 1e-3 / rows_per_s * 1e12, e_psum_analog=0.0,
        e_input_read=edram_value + bus_value, e_input_fetch=0.0,
        e_psum_access=bus_value / 2 + _pc(t1, "tile_shift_add_mw") * 1e-3 / outputs_per_s * 1e12,
        e_output_write=_pc(t1, "tile_output_register_mw") * 1e-3 / outputs_per_s * 1e12,
        e_output_move=router_value + edram_value,
        e_activation=_pc(t1, "tile_sigmoid_mw") * 1e-3 / outputs_per_s * 1e12,
        e_pool=_pc(t1, "tile_maxpool_mw") * 1e-3 / outputs_per_s * 1e12,
        static_mw=_pc(t1, "chip_hypertransport_mw"), area=tuple(area),
        derived=(("e_crossbar_read", "Table I's 2.4 mW for 8 crossbars over one read per 100 ns"),
                 ("e_ad_extra, e_row_drive, e_shift_add (output register part)",
                  "Table I's S+H, IR and OR powers over 8 x 128 rows (columns) per 100 ns"),
                 ("e_output_write, e_activation, e_pool, e_psum_access (tile S+A part)",
                  "Table I's tile OR, sigmoid, max-pool, S+A powers over a tile's peak output rate (12 IMAs x 8 "
                  "crossbars x 16 outputs per 1.6 us)"),
                 ("e_input_read, e_output_move", "eDRAM, bus and router energies (Accelergy) per 16-bit value")),
        sources=tech.ISAAC_TABLE1 + "; " + tech.ACCELERGY_ISAAC.format("*"))


def _timely_area(sub_chips, xbar, rows_per_dtc=8, cols_per_tdc=8, grid=(16, 12)):
    t = "timely"
    crossbars = sub_chips * grid[0] * grid[1]
    dtcs = sub_chips * grid[0] * xbar // rows_per_dtc       # at the left edge, one per 8 rows
    tdcs = sub_chips * grid[1] * xbar // cols_per_tdc       # at the bottom edge, one per 8 columns
    um2 = (("crossbars", crossbars * _pc(t, "crossbar_256_um2") * (xbar / 256) ** 2),
           ("dtc", dtcs * _pc(t, "dtc_8b_um2")), ("tdc", tdcs * _pc(t, "tdc_8b_um2")),
           ("x_subbufs", crossbars * xbar * _pc(t, "x_subbuf_um2")),
           ("p_subbufs", crossbars * xbar * _pc(t, "p_subbuf_um2")),
           ("charging_comparators", sub_chips * grid[1] * xbar * _pc(t, "charging_comparator_um2")))
    return tuple((k, v * 1e-6) for k, v in um2)


def timely(bits: int = 8) -> PimArch:
    """TIMELY (Li et al., ISCA 2020): 106 sub-chips of 16 x 12 crossbars (256 x 256, 4-bit cells), 8-bit DTCs and
    TDCs each shared by 8 rows / columns, X-subBufs along rows, P-subBufs down columns, O2IR, 40 MHz."""
    t2, t = "timely-table2", "timely"
    add_16b = tech.TABLES["65nm"]["add_8b"].value * 2
    per_value = bits / 8                                    # the buffer figures are per 8-bit access
    return PimArch(
        name="timely", node="65nm", clock_mhz=40.0, crossbars=106 * 16 * 12, xbar=256, cell_bits=4,
        weight_bits=bits, input_bits=bits, signed="offset", interface="time", slice_bits=8, read_cycles=16,
        input_chain=12, analog_input_chain=True, psum_chain=16, input_reads="once", fetch_per_read=False,
        e_crossbar_read=_pc(t2, "crossbar_read_fj") * 1e-3, e_da=_pc(t, "dtc_8b_fj") * 1e-3,
        e_ad=_pc(t, "tdc_8b_fj") * 1e-3, e_ad_extra=_pc(t, "charging_comparator_fj") * 1e-3,
        e_shift_add=add_16b, e_row_drive=_pc(t, "x_subbuf_fj") * 1e-3,
        e_psum_analog=(_pc(t, "p_subbuf_fj") + _pc(t, "i_adder_fj")) * 1e-3,
        e_input_read=_pc(t2, "input_buffer_fj") * 1e-3 * per_value, e_input_fetch=0.0,
        e_psum_access=(_pc(t2, "output_buffer_fj") + _pc(t2, "input_buffer_fj")) * 1e-3 / 2 * per_value,
        e_output_write=_pc(t2, "output_buffer_fj") * 1e-3 * per_value, e_output_move=0.0,
        e_activation=_pc(t2, "relu_fj") * 1e-3, e_pool=_pc(t2, "maxpool_fj") * 1e-3, static_mw=0.0,
        area=_timely_area(106, 256),
        derived=(("read_cycles", "16: a DTC shared by 8 rows loads a crossbar in 8 cycles, a TDC shared by 8 "
                                 "columns reads it out in 8"),
                 ("e_shift_add", "a 16-bit add, Horowitz's 8-bit add x 2 scaled to 65 nm (Table II gives none)"),
                 ("e_psum_access", "a partial sum written to the output buffer and read back: the mean of the two "
                                   "buffer figures"),
                 ("e_input_fetch, e_output_move", "0: no figure for the bus between sub-chips"),
                 ("area", "the sub-chip's components from Table II (crossbars, DTCs, TDCs, sub-buffers, "
                          "comparators); ReLU and max-pool units (count not given), the 2 KB buffers, bus and control "
                          "are left out")),
        sources=tech.TIMELY_TABLE2 + "; " + tech.ACCELERGY_TIMELY.format("*"))


# PRIME's buffers as TIMELY relates them: a P-subBuf access is 0.11 and an X-subBuf access 0.03 of a ReRAM
# buffer (L1) access, and L2 costs 146.7x (read) and 6.9x (write) an L1 access (TIMELY, Sec. II, as METHODS.md
# transcribes it). Both sub-buffer ratios give an L1 access of ~20.8 fJ; lean reads it as per bit.
_PRIME_L1_BIT_FJ = (tech.PIM_COMPONENTS["timely"]["p_subbuf_fj"].value / 0.11
                    + tech.PIM_COMPONENTS["timely"]["x_subbuf_fj"].value / 0.03) / 2


def prime(bits: int = 8) -> PimArch:
    """PRIME (Chi et al., ISCA 2016) as TIMELY's baseline: 256 x 256 mats of 4-bit cells, paired crossbars for
    signed weights, 3-bit input drivers, 6-bit sense amplifiers (8 per mat), L1 buffer subarrays fed from L2."""
    t2, isa = "timely-table2", "isaac"
    l1_value = _PRIME_L1_BIT_FJ * 1e-3 * bits
    sub_chips = 106
    crossbars = sub_chips * 16 * 12
    area = (("crossbars", crossbars * _pc("timely", "crossbar_256_um2") * 1e-6),
            ("input_drivers", crossbars * 256 * 3 * _pc(isa, "dac_1b_um2") * 1e-6),
            ("sense_amplifiers", crossbars * 8 * _pc(isa, "adc_8b_um2") / 4 * 1e-6))
    return PimArch(
        name="prime", node="65nm", clock_mhz=40.0, crossbars=crossbars, xbar=256, cell_bits=4, weight_bits=bits,
        input_bits=bits, signed="differential", interface="voltage", slice_bits=3, read_cycles=1 + 256 // 8,
        input_chain=1, analog_input_chain=False, psum_chain=1, input_reads="window", fetch_per_read=True,
        e_crossbar_read=_pc(t2, "crossbar_read_fj") * 1e-3, e_da=3 * _pc(isa, "dac_1b_pj"),
        e_ad=_pc(isa, "adc_8b_pj") / 4, e_ad_extra=0.0, e_shift_add=tech.TABLES["65nm"]["add_8b"].value * 2,
        e_row_drive=0.0, e_psum_analog=0.0, e_input_read=l1_value, e_input_fetch=(146.7 + 1) * l1_value,
        e_psum_access=(146.7 + 6.9) / 2 * l1_value, e_output_write=6.9 * l1_value, e_output_move=0.0,
        e_activation=_pc(t2, "relu_fj") * 1e-3, e_pool=_pc(t2, "maxpool_fj") * 1e-3, static_mw=0.0, area=area,
        derived=(("e_input_read, e_input_fetch, e_psum_access, e_output_write",
                  f"L1 = {_PRIME_L1_BIT_FJ:.1f} fJ/bit from TIMELY's sub-buffer ratios; L2 read 146.7x, write 6.9x"),
                 ("e_da", "a 3-bit driver as three of ISAAC's 1-bit DACs (32 nm, not rescaled)"),
                 ("e_ad", "a 6-bit sense amplifier as ISAAC's 8-bit ADC / 4 (SAR energy ~ 2^bits; 32 nm)"),
                 ("read_cycles", "33: one drive, then 8 sense amplifiers read 256 columns in 32 rounds at TIMELY's "
                                 "40 MHz"),
                 ("crossbars", "as many as TIMELY (106 x 16 x 12): iso-crossbar, PRIME's own count not given"),
                 ("area", "crossbars, drivers and sense amplifiers only (ISAAC's DAC and ADC areas, 32 nm); buffers "
                          "and the memory around the mats not counted")),
        sources="Chi et al., PRIME, ISCA 2016 (geometry); energies as TIMELY relates them; see derived")


ARCHS = {"prime": prime, "isaac": isaac, "timely": timely}


def get_arch(name: str, bits: int | None = None, overrides=None) -> PimArch:
    """A built-in architecture by name at ``bits`` (weights and inputs; the design's own width if None), with
    ``overrides`` (``"key=value"`` strings or a mapping) applied."""
    if name not in ARCHS:
        raise HardwareModelError(f"unknown PIM architecture {name!r}; choose one of: {', '.join(ARCHS)} "
                                 "(training: sot-mram, floatpim with --train)")
    if bits is not None and bits not in (8, 16):
        raise HardwareModelError(f"bits must be 8 or 16; got {bits!r}")
    arch = ARCHS[name]() if bits is None else ARCHS[name](bits)
    return arch.with_overrides(**parse_overrides(overrides))


def ablate(arch: PimArch, idea: str) -> PimArch:
    """``arch`` (TIMELY) without one of its ideas: ``"alb"``, ``"tdi"`` or ``"o2ir"`` (see the module docstring)."""
    if idea == "alb":
        return dataclasses.replace(arch, input_chain=1, analog_input_chain=False, psum_chain=1, e_row_drive=0.0,
                                   e_psum_analog=0.0)
    if idea == "tdi":
        return dataclasses.replace(arch, interface="voltage", slice_bits=1, e_da=_pc("isaac", "dac_1b_pj"),
                                   e_ad=_pc("isaac", "adc_8b_pj"), e_ad_extra=0.0)
    if idea == "o2ir":
        return dataclasses.replace(arch, input_reads="window")
    raise HardwareModelError(f"unknown TIMELY idea {idea!r}; choose from: {', '.join(IDEAS)}")


# ------------------------------------------------------------------------------------------ counts and costs

def layer_counts(arch: PimArch, layer, replicas: int = 1) -> dict:
    """The actions one pass of ``layer`` (conv or fc) asks of ``arch``'s components (see the module docstring)."""
    m = crossbar_mapping(layer, xbar=arch.xbar, cell_bits=arch.cell_bits, weight_bits=arch.weight_bits,
                         input_bits=arch.input_bits, dac_bits=arch.slice_bits, signed=arch.signed,
                         replicas=replicas)
    groups = layer.groups if layer.kind == "conv" else 1
    slices, rows, vectors = m.input_slices, m.rows, m.vectors
    column_cells = m.cols * m.cells_per_weight
    outputs = vectors * m.cols * groups
    values = layer.input_count if arch.input_reads == "once" else vectors * rows * groups
    input_reads = values * -(-m.col_tiles // arch.input_chain)
    row_uses = vectors * slices * rows * m.col_tiles * groups
    ad_groups = -(-m.row_tiles // arch.psum_chain)
    ad = vectors * slices * column_cells * ad_groups * groups
    return {"crossbar_reads": m.crossbar_reads, "input_reads": input_reads,
            "input_fetches": input_reads if arch.fetch_per_read else layer.input_count,
            "row_drives": row_uses, "da": input_reads * slices if arch.analog_input_chain else row_uses,
            "ad": ad, "shift_adds": ad,
            "analog_psums": vectors * slices * column_cells * m.row_tiles * groups if arch.psum_chain > 1 else 0,
            "psum_accesses": 2 * outputs * (ad_groups - 1), "outputs": outputs,
            "read_steps": m.steps, "crossbars": m.crossbars, "vectors": vectors, "macs": layer.macs}


# each component's category in the report: the crossbar, D/A, A/D, buffers and their moves, periphery
COMPONENTS = {"crossbar": "crossbar", "da": "d/a", "ad": "a/d", "ad_extra": "a/d", "input_buffer": "inputs",
              "input_fetch": "inputs", "row_drive": "inputs", "psum_buffer": "psums", "psum_analog": "psums",
              "output_buffer": "outputs", "output_move": "outputs", "shift_add": "digital",
              "activation": "digital", "pool": "digital", "static": "static"}


def components_of(arch: PimArch, c: dict) -> dict:
    """pJ by component (``COMPONENTS`` but pool and static, which are the network's) of the counts ``c``."""
    return {"crossbar": c["crossbar_reads"] * arch.e_crossbar_read, "da": c["da"] * arch.e_da,
            "ad": c["ad"] * arch.e_ad, "ad_extra": c["ad"] * arch.e_ad_extra,
            "input_buffer": c["input_reads"] * arch.e_input_read,
            "input_fetch": c["input_fetches"] * arch.e_input_fetch, "row_drive": c["row_drives"] * arch.e_row_drive,
            "psum_buffer": c["psum_accesses"] * arch.e_psum_access,
            "psum_analog": c["analog_psums"] * arch.e_psum_analog,
            "output_buffer": c["outputs"] * arch.e_output_write, "output_move": c["outputs"] * arch.e_output_move,
            "shift_add": c["shift_adds"] * arch.e_shift_add, "activation": c["outputs"] * arch.e_activation}


def by_category(components: dict) -> dict:
    """Component energies summed by their report category (``CATEGORIES``, in that order)."""
    out = dict.fromkeys(CATEGORIES, 0.0)
    for name, value in components.items():
        out[COMPONENTS[name]] += value
    return out if "static" in components else {k: v for k, v in out.items() if k != "static"}


def energy_of(arch: PimArch, c: dict) -> dict:
    """pJ by category (``CATEGORIES`` but static) of the counts ``c``."""
    return by_category(components_of(arch, c))


def replicate(arch: PimArch, layers) -> tuple:
    """Copies of each layer's crossbars that balance the pipeline: the fewest copies ``r_l`` (at most the layer's
    input vectors: a copy takes whole vectors) that make the slowest stage, ``ceil(vectors_l / r_l) x slices``
    reads, as short as the chip's crossbars allow. Returns (copies, fits); all 1 and ``fits`` False when the
    network does not fit once."""
    base = [layer_counts(arch, layer) for layer in layers]
    need = [b["crossbars"] for b in base]
    vectors = [b["vectors"] for b in base]
    if sum(need) > arch.crossbars:
        return tuple(1 for _ in layers), False
    lo, hi = 1, max(vectors)                   # vectors per copy of the slowest stage: feasible at hi
    while lo < hi:
        mid = (lo + hi) // 2
        if sum(-(-v // mid) * x for v, x in zip(vectors, need, strict=True)) <= arch.crossbars:
            hi = mid
        else:
            lo = mid + 1
    return tuple(-(-v // lo) for v in vectors), True


def evaluate(arch: PimArch, workload, batch: int | None = None, replication: bool = True) -> dict:
    """Energy by category and component counts, latency, throughput and efficiency of ``workload`` (a name, file
    or ``Workload``) on ``arch``, per layer and in total, for one inference pass of the batch. A layer's TOPs/W,
    GOPs/s and GOPs/s/mm2 are its own work over its own energy and time (its copies only, over the chip's area);
    the totals' throughput is the pipeline's (the batch over the slowest stage)."""
    wl = load_workload(workload, batch=batch)
    compute = wl.compute_layers()
    if not compute:
        raise HardwareModelError(f"workload {wl.name} has no conv or fc layer to map onto crossbars")
    replicas, fits = replicate(arch, compute)
    if not replication:
        replicas = (1,) * len(compute)
    read_s = arch.read_cycles / (arch.clock_mhz * 1e6)
    rows, parts = [], dict.fromkeys(COMPONENTS, 0.0)
    for layer, r in zip(compute, replicas, strict=True):
        c = layer_counts(arch, layer, replicas=r)
        comp = components_of(arch, c)
        seconds = c["read_steps"] * read_s
        total = sum(comp.values())
        rows.append({"name": layer.name, "kind": layer.kind, "replicas": r, "counts": c, "components_pj": comp,
                     "energy_pj": by_category(comp), "total_pj": total, "seconds": seconds, "macs": layer.macs,
                     "tops_per_w": 2 * layer.macs / total if total else 0.0,
                     "gops_per_s": 2 * layer.macs / seconds / 1e9 if seconds else 0.0,
                     "gops_per_s_mm2": 2 * layer.macs / seconds / 1e9 / arch.area_mm2() if seconds else 0.0})
        for k, v in comp.items():
            parts[k] += v
    parts["pool"] = sum(layer.output_count * arch.e_pool for layer in wl.layers if layer.kind == "pool")
    latency = sum(row["seconds"] for row in rows)
    stage = max(row["seconds"] for row in rows)
    parts["static"] = arch.static_mw * 1e-3 * stage * 1e12   # per batch in the steady pipeline
    totals = by_category(parts)
    energy = sum(totals.values())
    macs = sum(row["macs"] for row in rows)
    n = compute[0].n
    return {"arch": arch.name, "workload": wl.name, "batch": n, "bits": arch.weight_bits, "fits": fits,
            "crossbars_needed": sum(row["counts"]["crossbars"] // row["replicas"] for row in rows),
            "crossbars": arch.crossbars, "layers": rows, "energy_pj": totals, "components_pj": parts,
            "total_pj": energy,
            "energy_per_image_uj": energy / n * 1e-6, "latency_s": latency, "stage_s": stage,
            "images_per_s": n / stage, "macs": macs, "tops_per_w": 2 * macs / energy,
            "gops_per_s_mm2": 2 * macs / stage / 1e9 / arch.area_mm2(), "area_mm2": arch.area_mm2(),
            "area": dict(arch.area), "derived": dict(arch.derived), "sources": arch.sources,
            "parameters": arch.to_dict()}


def peak(arch: PimArch) -> dict:
    """The peak figures architects quote: every crossbar busy on a fully used tile of a large fc layer.

    Returns
    -------
    dict
        ``tops_per_s``, ``gops_per_s_mm2``, ``gops_per_w`` (and ``tops_per_w``), ``power_w``, ``area_mm2``,
        ``pj_per_op`` and the energy split of the tile (``energy_share``).
    """
    from ..workload import LayerShape

    cells = crossbar_mapping(LayerShape("probe", "fc", 1, arch.xbar, 1, 1, 1, 1, 1), xbar=arch.xbar,
                             cell_bits=arch.cell_bits, weight_bits=arch.weight_bits, input_bits=arch.input_bits,
                             dac_bits=arch.slice_bits, signed=arch.signed).cells_per_weight
    per_xbar = arch.xbar // cells                          # weights along a crossbar's columns
    tile = LayerShape("peak", "fc", 64, arch.xbar * arch.psum_chain, per_xbar * arch.input_chain, 1, 1, 1, 1,
                      w_bits=arch.weight_bits, a_bits=arch.input_bits)
    e = energy_of(arch, layer_counts(arch, tile))
    ops = 2 * tile.macs
    pj_per_op = sum(e.values()) / ops
    read_s = arch.read_cycles / (arch.clock_mhz * 1e6)
    ops_per_s = arch.crossbars * 2 * arch.xbar * per_xbar / (arch.slices() * read_s)
    power = ops_per_s * pj_per_op * 1e-12 + arch.static_mw * 1e-3
    total = sum(e.values())
    return {"arch": arch.name, "bits": arch.weight_bits, "tops_per_s": ops_per_s / 1e12,
            "gops_per_s_mm2": ops_per_s / 1e9 / arch.area_mm2(), "gops_per_w": ops_per_s / 1e9 / power,
            "tops_per_w": ops_per_s / 1e12 / power, "power_w": power, "area_mm2": arch.area_mm2(),
            "pj_per_op": pj_per_op, "energy_share": {k: v / total for k, v in e.items()}}


def ablation(arch: PimArch, workload, ideas=IDEAS, batch: int | None = None) -> dict:
    """What each of TIMELY's ideas saves on ``workload``, one at a time and together.

    ``baseline`` is ``arch`` without every idea in ``ideas``. For each idea: ``without`` is ``arch`` without that
    one idea (what dropping it costs), ``only`` the baseline with just that idea back (what it saves alone);
    ``share_of_saving`` is ``(baseline - only) / (baseline - arch)``. ``pairs`` gives the same for each two ideas
    together (TIMELY credits ALB + O2IR with 99% of its saving).

    Returns
    -------
    dict
        ``arch``, ``workload``, ``ideas``, ``energy_pj`` of ``arch`` and ``baseline`` (by category), ``rows``.
    """
    ideas = [i.strip() for i in ideas if i.strip()]
    for idea in ideas:
        if idea not in IDEAS:
            raise HardwareModelError(f"unknown TIMELY idea {idea!r}; choose from: {', '.join(IDEAS)}")
    if not ideas or len(set(ideas)) != len(ideas):
        raise HardwareModelError(f"--ablate takes distinct ideas from: {', '.join(IDEAS)}; got {','.join(ideas)}")
    wl = load_workload(workload, batch=batch)

    def without(names):
        a = arch
        for name in names:
            a = ablate(a, name)
        r = evaluate(a, wl)
        return r["total_pj"], r["energy_pj"]

    full, full_split = without(())
    base, base_split = without(ideas)
    saving = base - full
    rows = []
    groups = [(i,) for i in ideas] + ([tuple(p) for p in _pairs(ideas)] if len(ideas) > 2 else [])
    for group in groups:
        dropped, _ = without(group)
        only, _ = without([i for i in ideas if i not in group])
        rows.append({"ideas": "+".join(group), "without_pj": dropped, "without_x": dropped / full,
                     "only_pj": only, "share_of_saving": (base - only) / saving if saving > 0 else 0.0})
    return {"arch": arch.name, "workload": wl.name, "batch": wl.layers[0].n, "ideas": ideas, "total_pj": full,
            "energy_pj": full_split, "baseline_pj": base, "baseline_energy_pj": base_split,
            "baseline_x": base / full, "rows": rows}


def _pairs(items):
    return [(a, b) for k, a in enumerate(items) for b in items[k + 1:]]
