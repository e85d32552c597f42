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
So (``sot_steps``):

- N-bit add: N x (1 sense + 1 write) (sum written, carry latched);
- sign of a product: 1 sense (XOR) + 1 write; exponent of a product: add Ne bits, subtract the bias (a
  constant row): 2 Ne x (sense + write);
- mantissa multiply (Nm + 1 bits with the hidden one) by bit-serial shift-and-add through a two-column buffer:
  for each multiplier bit, the partial product a AND b_j into the buffer ((Nm + 1) x (sense + write)), then
  added into the accumulator ((Nm + 1) x (sense + write)); the shift is the choice of rows, free:
  2 (Nm + 1)^2 x (sense + write);
- normalization (after a carry, as FloatPIM normalizes): 1 sense (the top bit into the latch as a mask), Nm + 1
  masked copies one bit over (sense + write each), the exponent incremented (Ne x (sense + write));
- add: exponent difference (Ne x (sense + write), the subtrahend's complement read for free); its sign into the
  latch (1 sense); the larger exponent (Ne masked copies) and the larger operand's mantissa (2 (Nm + 1) masked
  copies) selected; alignment by search: for each shift d in 0..Nm+1, a search of the difference field for d
  (ceil(Ne / 2) senses: two key bits per 3-row sense, ANDed into the latch) and Nm + 1 masked copies shifted by
  d; the mantissa add over Nm + 2 bits; normalization as above.
For bfloat16 (Ne = 8, Nm = 7): multiply 162 senses + 161 writes; add 167 senses + 129 writes (FloatPIM: 360 and
313 NOR steps + 15 searches). A sense costs ``2 x rows x I_read x V_read x t_read`` (both cells of each
activated bit; V_read = I_read x the mean of R_on and R_off); a write ``E_write``. Times: ``t_read`` per sense,
``t_write`` per write, not overlapped. Cell constants (``SOT_MRAM``) from a public SOT-MRAM cell of the DESTINY
memory simulator (the paper's own are not public): lean's choice, printed with the result, every one settable.

Area: lanes x bits per lane x area per bit. FloatPIM's rows hold 1,024 cells (4.6 F^2 per bit: 30.64 mm2 for
8 Gb at 28 nm, its crossbars 95% of its area); the SOT-MRAM lane holds FloatPIM's data bits (1,024 - 93
columns kept for bfloat16 scratch) plus two buffer columns, at twice the DESTINY cell (a complementary pair),
at the same node: an iso-lane, iso-data comparison.
"""

import dataclasses
import math
from dataclasses import dataclass

from ...errors import HardwareModelError
from ..accelerator import _convert, parse_overrides
from ..workload import load as load_workload

FLOATPIM_SOURCE = ("Imani et al., FloatPIM, ISCA 2019, as the project's METHODS.md transcribes it (step counts, "
                   "E_set, E_NOR, E_search, T_NOR, T_search, 32 tiles x 256 blocks of 1 Mb, 30.64 mm2, 28 nm); "
                   "not checked against the paper")
SOT_SOURCE = ("DESTINY memory simulator, a public SOT-MRAM cell: jjastrz14/Destiny-Memory-simulator @ 16f90dd, "
              "config/SOTRAM/sample_SOTRAM.cell (6 F^2, R_on 5 kOhm, R_off 10 kOhm, read 25 uA for 0.221 ns, "
              "set/reset 0.1 pJ in 0.266 ns); the step counts are lean's derivation (module docstring)")
FORMATS = {16: (8, 7), 32: (8, 23)}   # bits -> (exponent bits, mantissa bits): bfloat16, FP32


@dataclass(frozen=True)
class DigitalPim:
    """A digital PIM design for training: lanes, per-step times (ns) and energies (fJ), area per bit (F^2)."""

    name: str
    node_nm: float
    lanes: int                  # operations in flight at once (rows of all blocks)
    lanes_per_block: int        # lanes sharing one search
    bits_per_lane: int          # cells a lane holds (data and scratch)
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
        """A copy with fields replaced (strings from ``--set`` converted); unknown names and bad values refused."""
        fields = {f.name: f for f in dataclasses.fields(self)}
        settable = [f for f in fields if f not in ("name", "sources")]
        changes = {}
        for key, value in values.items():
            if key not in settable:
                raise HardwareModelError(f"unknown {self.name} parameter {key!r}; choose from: {', '.join(settable)}")
            kind = fields[key].type
            changes[key] = _convert(key, value, kind)
            if kind is not bool and not (changes[key] >= 0 and math.isfinite(changes[key])):
                raise HardwareModelError(f"{key} must be a finite number >= 0; got {value!r}")
        out = dataclasses.replace(self, **changes)
        for key in ("lanes", "lanes_per_block", "bits_per_lane", "sense_rows"):
            if getattr(out, key) < 1:
                raise HardwareModelError(f"{key} must be at least 1; got {getattr(out, key)}")
        return out

    def area_mm2(self) -> float:
        """Cells of all lanes (periphery left out, as for both designs)."""
        return self.lanes * self.bits_per_lane * self.area_f2_per_bit * (self.node_nm * 1e-3) ** 2 * 1e-6

    def e_sense_fj(self) -> float:
        """One multi-row sense: both cells of each activated bit at the read current and the mean resistance."""
        volts = self.read_current_ua * 1e-6 * (self.r_on_kohm + self.r_off_kohm) / 2 * 1e3
        return 2 * self.sense_rows * self.read_current_ua * 1e-6 * volts * self.t_read_ns * 1e-9 * 1e15


def floatpim() -> DigitalPim:
    """FloatPIM: 32 tiles x 256 blocks of 1,024 x 1,024 ReRAM cells, 28 nm (constants from METHODS.md)."""
    bits = 32 * 256 * 1024 * 1024
    return DigitalPim(name="floatpim", node_nm=28.0, lanes=32 * 256 * 1024, lanes_per_block=1024,
                      bits_per_lane=1024, area_f2_per_bit=30.64e6 / bits / (28e-3) ** 2 * 0.951,
                      t_nor_ns=1.1, t_search_ns=1.5, e_nor_fj=0.29, e_set_fj=23.8, e_search_fj=5340.0,
                      sources=FLOATPIM_SOURCE)


def sot_mram() -> DigitalPim:
    """The SOT-MRAM digital PIM, iso-lane and iso-data with FloatPIM, DESTINY's SOT cell, at FloatPIM's node."""
    return DigitalPim(name="sot-mram", node_nm=28.0, lanes=32 * 256 * 1024, lanes_per_block=1024,
                      bits_per_lane=1024 - 93 + 2, area_f2_per_bit=2 * 6.0, t_read_ns=0.221, t_write_ns=0.266,
                      e_write_fj=100.0, read_current_ua=25.0, r_on_kohm=5.0, r_off_kohm=10.0, sources=SOT_SOURCE)


DESIGNS = {"floatpim": floatpim, "sot-mram": sot_mram}


def floatpim_steps(ne: int, nm: int) -> dict:
    """FloatPIM's published step counts: ``{"mul": {"nor": n}, "add": {"nor": n, "search": n}}``."""
    return {"mul": {"nor": 12 * ne + 6.5 * nm * nm - 7.5 * nm - 2, "search": 0},
            "add": {"nor": 3 + 16 * ne + 19 * nm + nm * nm, "search": 2 * nm + 1}}


def _steps(senses, writes):
    return {"sense": senses, "write": writes}


def _total(*parts):
    return _steps(sum(p["sense"] for p in parts), sum(p["write"] for p in parts))


def sot_steps(ne: int, nm: int) -> dict:
    """lean's derived SOT-MRAM step counts (module docstring): ``{"mul": {"sense": n, "write": n}, "add": ...}``.
    An n-bit add and n masked one-bit copies are both n x (1 sense + 1 write)."""
    m1 = nm + 1                                                   # mantissa with the hidden bit
    normalize = _total(_steps(1, 0), _steps(m1, m1), _steps(ne, ne))
    mul = _total(_steps(1, 1), _steps(2 * ne, 2 * ne), _steps(2 * m1 * m1, 2 * m1 * m1), normalize)
    search = _steps(-(-ne // 2), 0)
    align = _total(*[_total(search, _steps(m1, m1)) for _ in range(nm + 2)])
    add = _total(_steps(ne, ne), _steps(1, 0), _steps(ne, ne), _steps(2 * m1, 2 * m1), align,
                 _steps(nm + 2, nm + 2), normalize)
    return {"mul": mul, "add": add}


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
        for op, s in sot_steps(ne, nm).items():
            out[op] = {"steps": s, "ns": s["sense"] * design.t_read_ns + s["write"] * design.t_write_ns,
                       "fj": s["sense"] * design.e_sense_fj() + s["write"] * design.e_write_fj}
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
    compute = [layer for layer in wl.layers if layer.kind in ("conv", "fc")]
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
            "layers": rows, "total_uj": energy, "seconds": seconds, "area_mm2": design.area_mm2(),
            "macs": sum(layer.macs for layer in compute), "constants": dataclasses.asdict(design),
            "sources": design.sources}
