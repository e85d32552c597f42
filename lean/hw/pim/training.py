"""A training step in floating point inside memory: FloatPIM (NOR in ReRAM) against the SOT-MRAM digital PIM.

Both designs compute bit-serially in memory arrays, one floating-point operation per lane (a row in FloatPIM, a
column segment in the SOT-MRAM array), all lanes of the chip in lock-step. A training step of a layer with ``M``
multiply-accumulates per batch and ``W`` weights asks for (``step_ops``): forward ``M`` multiplies and ``M``
adds; backward to the inputs ``M`` and ``M`` (not for the first layer); backward to the weights ``M`` and ``M``;
the update ``W`` multiplies (learning rate x gradient) and ``W`` adds. Activations, pooling and the moves between
blocks are the same work on both designs and are left out of both (what is compared is the arithmetic). Time is
``ceil(ops / lanes)`` operation times per phase, layers one after another; energy is ops x energy per op.

FloatPIM (Imani et al., ISCA 2019), its published step counts (``Ne``, ``Nm`` exponent and mantissa bits):

- multiply: ``12 Ne + 6.5 Nm^2 - 7.5 Nm - 2`` NOR steps;
- add: ``3 + 16 Ne + 19 Nm + Nm^2`` NOR steps and ``2 Nm + 1`` searches (exponent alignment by search);
- a NOR step takes ``T_NOR`` and costs ``E_NOR`` in its output cell; lean also charges the output cell's
  initialization (MAGIC NOR sets the output cell before each evaluation: ``E_set``), which FloatPIM lists but
  lean could not read whether its energy model charges (``--set floatpim_init_per_nor=false`` drops it);
- a search covers a block's 1,024 rows at once: ``E_search`` is shared by the lanes of a block.
Constants (``FLOATPIM``) as the project's METHODS.md transcribes them (28 nm; not checked against the paper).

SOT-MRAM digital PIM (Wang, Zhao et al., ISCAS 2020): its step counts are not published; lean derives them from
the cell and adder design, here, before any comparison. The primitives:

- a *sense*: up to three rows of complementary 2T-2MTJ cells activated in a column; the sense amplifier's
  references give AND, OR, MAJ and, from the complementary half (every bit is stored with its inverse, so NOT is
  free), XOR: a 1-bit full add is one 3-row sense (carry = MAJ(a, b, c), sum = XOR(a, b, c)). The carry stays in
  the sense amplifier's latch for the next bit;
- a *write*: one SOT write of a result bit into every lane of a row.
So (``sot_steps``; ``m1 = Nm + 1``, the mantissa with its hidden bit):

- N-bit add: N x (1 sense + 1 write) (sum written, carry latched); one more write stores a carry out;
- multiply: the sign, 1 sense (XOR) + 1 write; the exponent, Ne bits added and the bias (a constant row)
  subtracted, 2 Ne x (sense + write); the mantissa by bit-serial shift-and-add through a two-column buffer: for
  each of the m1 multiplier bits, the partial product a AND b_j into the buffer (m1 x (sense + write)), then
  added into the accumulator (m1 x (sense + write) and its carry out written); the shift is the choice of rows,
  free: 2 m1^2 senses, m1 (2 m1 + 1) writes; normalization (after a carry, as FloatPIM's count has it): 1 sense
  (the top bit into the latch as a mask), m1 masked copies one bit over, the exponent incremented (Ne);
- add (same-sign operands: FloatPIM's published count covers the same case, with no leading-zero
  normalization): both exponent differences a - b and b - a (2 Ne x (sense + write); a subtrahend's complement
  is read for free); the sign of a - b into the latch (1 sense); the non-negative difference selected (Ne masked
  copies); the result's sign and exponent (1 + Ne) and the larger and smaller mantissas (2 m1) selected by masked
  copies; alignment by search: for each shift d in 0..Nm+1, a search of the difference field for d (ceil(Ne / 2)
  senses: two key bits per 3-row sense, ANDed into the latch) and m1 masked copies shifted by d; the mantissa add
  over m1 + 1 bits; normalization as for the multiply.
For bfloat16 (Ne = 8, Nm = 7): multiply 162 senses + 169 writes; add 184 senses + 146 writes (FloatPIM: 360 and
313 NOR steps + 15 searches). A sense costs ``2 x rows x I_read x V_read x t_read`` (both cells of each activated
bit; V_read = I_read x the mean of R_on and R_off); a write sets both cells of the pair: 2 x ``E_write``. Times:
``t_read`` per sense, ``t_write`` per write, not overlapped. Cell constants (``sot_mram()``) from a public SOT-MRAM
cell of the DESTINY memory simulator (the paper's own are not public): lean's choice, printed with the result,
every one settable.

Area: lanes x bits per lane x area per bit, cells only (periphery left out of both). FloatPIM's rows hold 1,024
cells: 931 of data and 93 kept for bfloat16 processing; its 30.64 mm2 for 8 Gb at 28 nm is 4.6 F^2 per bit, 4.4
F^2 for the cells alone (its crossbars are 95.1% of its area). The SOT-MRAM lane holds the same 931 data bits and
the scratch its derivation needs (``sot_scratch_bits``: the accumulator, the buffer, the differences, the selected
and aligned mantissas: 58 bits for bfloat16) at twice the DESTINY cell (a complementary pair), at the same node:
an iso-lane, iso-data comparison.
"""

import dataclasses
import math
from dataclasses import dataclass

from ...errors import HardwareModelError
from ..accelerator import convert_overrides, parse_overrides
from ..workload import load as load_workload

FLOATPIM_SOURCE = ("Imani et al., FloatPIM, ISCA 2019, as the project's METHODS.md transcribes it (step counts, "
                   "E_set, E_NOR, E_search, T_NOR, T_search, 32 tiles x 256 blocks of 1 Mb, 30.64 mm2, 28 nm); "
                   "not checked against the paper")
SOT_SOURCE = ("DESTINY memory simulator, a public SOT-MRAM cell: jjastrz14/Destiny-Memory-simulator @ 16f90dd, "
              "config/SOTRAM/sample_SOTRAM.cell (6 F^2, R_on 5 kOhm, R_off 10 kOhm, read 25 uA for 0.221 ns, "
              "set/reset 0.1 pJ in 0.266 ns); the step counts are lean's derivation (module docstring)")
FORMATS = {16: (8, 7), 32: (8, 23)}   # bits -> (exponent bits, mantissa bits): bfloat16, FP32


FLOATPIM_FIELDS = ("t_nor_ns", "t_search_ns", "e_nor_fj", "e_set_fj", "e_search_fj", "floatpim_init_per_nor")
SOT_FIELDS = ("t_read_ns", "t_write_ns", "e_write_fj", "read_current_ua", "r_on_kohm", "r_off_kohm", "sense_rows")


@dataclass(frozen=True)
class DigitalPim:
    """A digital PIM design for training: lanes, per-step times (ns) and energies (fJ), area per bit (F^2)."""

    name: str
    node_nm: float
    lanes: int                  # operations in flight at once (rows of all blocks)
    lanes_per_block: int        # lanes sharing one search
    data_bits_per_lane: int     # cells of a lane holding data
    scratch_bits_per_lane: int  # cells a lane keeps for computing (0: the derivation's need, sot_scratch_bits)
    area_f2_per_bit: float
    # FloatPIM
    t_nor_ns: float = 0.0
    t_search_ns: float = 0.0
    e_nor_fj: float = 0.0
    e_set_fj: float = 0.0
    e_search_fj: float = 0.0
    floatpim_init_per_nor: bool = True
    # SOT-MRAM
    t_read_ns: float = 0.0
    t_write_ns: float = 0.0
    e_write_fj: float = 0.0
    read_current_ua: float = 0.0
    r_on_kohm: float = 0.0
    r_off_kohm: float = 0.0
    sense_rows: int = 3
    sources: str = ""

    def with_overrides(self, **values) -> "DigitalPim":
        """A copy with fields replaced (strings from ``--set`` converted); unknown names, the other design's
        fields and bad values refused."""
        other = SOT_FIELDS if self.name == "floatpim" else FLOATPIM_FIELDS
        settable = {f.name: f.type for f in dataclasses.fields(self)
                    if f.name not in ("name", "sources") and f.name not in other}
        changes = convert_overrides(values, settable, self.name, "choose from")
        for key, value in changes.items():
            if settable[key] is not bool and not (value >= 0 and math.isfinite(value)):
                raise HardwareModelError(f"{key} must be a finite number >= 0; got {values[key]!r}")
        out = dataclasses.replace(self, **changes)
        for key in ("lanes", "lanes_per_block", "data_bits_per_lane", "sense_rows"):
            if getattr(out, key) < 1:
                raise HardwareModelError(f"{key} must be at least 1; got {getattr(out, key)}")
        return out

    def bits_per_lane(self, bits: int) -> int:
        """Data and scratch cells of a lane computing in the format of ``bits``."""
        ne, nm = FORMATS[bits]
        return self.data_bits_per_lane + (self.scratch_bits_per_lane or sot_scratch_bits(ne, nm))

    def area_mm2(self, bits: int = 16) -> float:
        """Cells of all lanes (periphery left out, as for both designs)."""
        return (self.lanes * self.bits_per_lane(bits) * self.area_f2_per_bit * (self.node_nm * 1e-3) ** 2
                * 1e-6)

    def e_sense_fj(self) -> float:
        """One multi-row sense: both cells of each activated bit at the read current and the mean resistance."""
        volts = self.read_current_ua * 1e-6 * (self.r_on_kohm + self.r_off_kohm) / 2 * 1e3
        return 2 * self.sense_rows * self.read_current_ua * 1e-6 * volts * self.t_read_ns * 1e-9 * 1e15


def floatpim() -> DigitalPim:
    """FloatPIM: 32 tiles x 256 blocks of 1,024 x 1,024 ReRAM cells, 28 nm (constants from METHODS.md)."""
    bits = 32 * 256 * 1024 * 1024
    return DigitalPim(name="floatpim", node_nm=28.0, lanes=32 * 256 * 1024, lanes_per_block=1024,
                      data_bits_per_lane=1024 - 93, scratch_bits_per_lane=93,
                      area_f2_per_bit=30.64e6 / bits / (28e-3) ** 2 * 0.951,
                      t_nor_ns=1.1, t_search_ns=1.5, e_nor_fj=0.29, e_set_fj=23.8, e_search_fj=5340.0,
                      sources=FLOATPIM_SOURCE)


def sot_mram() -> DigitalPim:
    """The SOT-MRAM digital PIM, iso-lane and iso-data with FloatPIM, DESTINY's SOT cell, at FloatPIM's node."""
    return DigitalPim(name="sot-mram", node_nm=28.0, lanes=32 * 256 * 1024, lanes_per_block=1024,
                      data_bits_per_lane=1024 - 93, scratch_bits_per_lane=0, area_f2_per_bit=2 * 6.0,
                      t_read_ns=0.221, t_write_ns=0.266, e_write_fj=100.0, read_current_ua=25.0, r_on_kohm=5.0,
                      r_off_kohm=10.0, sources=SOT_SOURCE)


DESIGNS = {"floatpim": floatpim, "sot-mram": sot_mram}


def floatpim_steps(ne: int, nm: int) -> dict:
    """FloatPIM's published step counts: ``{"mul": {"nor": n, "search": 0}, "add": {"nor": n, "search": n}}``
    (6.5 Nm^2 - 7.5 Nm = Nm (13 Nm - 15) / 2, a whole number for every Nm)."""
    return {"mul": {"nor": 12 * ne + nm * (13 * nm - 15) // 2 - 2, "search": 0},
            "add": {"nor": 3 + 16 * ne + 19 * nm + nm * nm, "search": 2 * nm + 1}}


def _steps(senses, writes):
    return {"sense": senses, "write": writes}


def _total(*parts):
    return _steps(sum(p["sense"] for p in parts), sum(p["write"] for p in parts))


def sot_step_parts(ne: int, nm: int) -> dict:
    """lean's derived SOT-MRAM step counts by part (module docstring): ``{"mul": {part: {"sense": n, "write": n}},
    "add": {...}}``. An n-bit add and n masked one-bit copies are both n x (1 sense + 1 write)."""
    m1 = nm + 1                                                   # mantissa with the hidden bit
    normalize = _total(_steps(1, 0), _steps(m1, m1), _steps(ne, ne))
    search = _steps(-(-ne // 2), 0)
    return {
        "mul": {"sign": _steps(1, 1), "exponent": _steps(2 * ne, 2 * ne),
                "mantissa shift-and-add": _steps(2 * m1 * m1, m1 * (2 * m1 + 1)), "normalize": normalize},
        "add": {"exponent differences": _total(_steps(2 * ne, 2 * ne), _steps(1, 0), _steps(ne, ne)),
                "select sign, exponent, mantissas": _steps(1 + ne + 2 * m1, 1 + ne + 2 * m1),
                "alignment by search": _total(*[_total(search, _steps(m1, m1)) for _ in range(nm + 2)]),
                "mantissa add": _steps(m1 + 1, m1 + 1), "normalize": normalize},
    }


def sot_steps(ne: int, nm: int) -> dict:
    """lean's derived SOT-MRAM step counts per operation: ``{"mul": {"sense": n, "write": n}, "add": ...}``."""
    return {op: _total(*parts.values()) for op, parts in sot_step_parts(ne, nm).items()}


def sot_scratch_bits(ne: int, nm: int) -> int:
    """Scratch cells the SOT-MRAM derivation needs in a lane: the larger of the multiply's (accumulator 2 m1,
    buffer m1, sign, exponent Ne) and the add's (two differences and the selected one 3 Ne, sign and exponent
    1 + Ne, two selected mantissas 2 m1, their sum m1 + 1)."""
    m1 = nm + 1
    return max(3 * m1 + 1 + ne, 4 * ne + 1 + 3 * m1 + 1)


def op_cost(design: DigitalPim, bits: int) -> dict:
    """Time (ns) and energy per lane (fJ) of one FP multiply and one FP add at ``bits`` (16: bfloat16, 32: FP32),
    with the step counts."""
    ne, nm = FORMATS[bits]
    out = {}
    if design.name == "floatpim":
        for op, s in floatpim_steps(ne, nm).items():
            nor_fj = design.e_nor_fj + (design.e_set_fj if design.floatpim_init_per_nor else 0.0)
            out[op] = {"steps": s, "ns": s["nor"] * design.t_nor_ns + s["search"] * design.t_search_ns,
                       "fj": s["nor"] * nor_fj + s["search"] * design.e_search_fj / design.lanes_per_block}
    else:
        parts = sot_step_parts(ne, nm)
        for op, s in sot_steps(ne, nm).items():
            out[op] = {"steps": s, "ns": s["sense"] * design.t_read_ns + s["write"] * design.t_write_ns,
                       "fj": s["sense"] * design.e_sense_fj() + s["write"] * 2 * design.e_write_fj,
                       "parts": parts[op]}
    return out


def step_ops(layer, first: bool) -> dict:
    """FP multiplies (= adds) of one training step of ``layer`` per phase."""
    macs, weights = layer.macs, layer.weight_count
    return {"forward": macs, "backward_input": 0 if first else macs, "backward_weight": macs, "update": weights}


def evaluate_training(design_name: str, workload, bits: int | None = None, batch: int | None = None,
                      overrides=None) -> dict:
    """Energy, latency and area of one training step of ``workload`` on ``design_name`` (``sot-mram`` or
    ``floatpim``) in floating point (``bits`` 16: bfloat16, the default; 32: FP32), per layer and in total.

    Returns
    -------
    dict
        ``design``, ``workload``, ``batch``, ``format``, ``op`` (per-op steps, ns, fJ), ``layers`` (ops, energy_uj,
        seconds per phase), ``total_uj``, ``seconds``, ``area_mm2``, the design's constants and ``sources``.
    """
    if design_name not in DESIGNS:
        raise HardwareModelError(f"unknown training PIM design {design_name!r}; choose one of: {', '.join(DESIGNS)}")
    bits = 16 if bits is None else bits
    if bits not in FORMATS:
        raise HardwareModelError(f"--train computes in bfloat16 (--bits 16) or FP32 (--bits 32); got {bits}")
    design = DESIGNS[design_name]().with_overrides(**parse_overrides(overrides))
    wl = load_workload(workload, batch=batch)
    compute = wl.compute_layers()
    if not compute:
        raise HardwareModelError(f"workload {wl.name} has no conv or fc layer to train")
    cost = op_cost(design, bits)
    per_mac_fj = cost["mul"]["fj"] + cost["add"]["fj"]
    per_mac_ns = cost["mul"]["ns"] + cost["add"]["ns"]
    rows, energy, seconds = [], 0.0, 0.0
    for i, layer in enumerate(compute):
        ops = step_ops(layer, first=i == 0)
        e = {phase: n * per_mac_fj * 1e-9 for phase, n in ops.items()}              # uJ
        t = {phase: -(-n // design.lanes) * per_mac_ns * 1e-9 for phase, n in ops.items()}
        rows.append({"name": layer.name, "ops": ops, "energy_uj": e, "seconds": t,
                     "total_uj": sum(e.values()), "total_s": sum(t.values())})
        energy += sum(e.values())
        seconds += sum(t.values())
    ne, nm = FORMATS[bits]
    return {"design": design.name, "workload": wl.name, "batch": compute[0].n, "bits": bits,
            "format": {16: "bfloat16", 32: "FP32"}[bits], "exponent_bits": ne, "mantissa_bits": nm, "op": cost,
            "layers": rows, "total_uj": energy, "seconds": seconds, "area_mm2": design.area_mm2(bits),
            "bits_per_lane": design.bits_per_lane(bits),
            "macs": sum(layer.macs for layer in compute), "constants": dataclasses.asdict(design),
            "sources": design.sources}
