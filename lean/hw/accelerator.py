"""Accelerator descriptions: frozen dataclasses whose field names carry their units, built from named data files.

Each built-in accelerator is a TOML file in ``lean/hw/accelerators/`` (``BUILTIN``): a ``name``, ``description``,
``source`` and ``tech`` (the technology table of ``lean.hw.tech`` its energies come from), and a ``[parameters]``
table giving every field with its value, unit (none for flags and the dataflow) and source (paper and section, or
"assumed: why"). In short:

- ``eyeriss``: Chen et al., JSSC 2017: 12x14 PEs, row-stationary, 108 kB global buffer holding input maps and
  partial sums (filters go from DRAM straight to the array), per-PE scratchpads of 224 filter, 12 input and 24
  partial-sum words, 16-bit, 200 MHz; zero gating of MACs on zero inputs; maps run-length coded off chip
  (``dram_format = "rlc"``); a 64-bit link at 60 MHz (2.4 bytes a core cycle); maps staged in the buffer while
  the array computes, filters streamed from DRAM into the PEs, which wait for them.
- ``tpu-like``: a weight-stationary systolic array after Jouppi et al., ISCA 2017: 256x256 8-bit MACs, 700 MHz,
  24 MiB unified buffer, ~30 GB/s of weight and activation memory bandwidth (43 bytes a cycle).
- ``shidiannao-like``: an output-stationary 8x8 array after Du et al., ISCA 2015: 16-bit, 1 GHz, 288 kB of
  on-chip buffers; we give it a modest 4 bytes/cycle DRAM link for networks that do not fit.
- ``diannao``: no local reuse, a 16x16 multiplier array with adder trees after Chen et al., ASPLOS 2014 (it was
  ``diannao-like``, a name ``load`` still takes);
  16-bit, 1 GHz, 36 kB of buffers, 16 bytes/cycle DRAM.

Energies per access (``e_*_pj``, one ``word_bits`` word) come from the ``tech`` table when an accelerator is built,
and can be overridden like any other field (``with_overrides``, ``parse_overrides``, ``lean hw predict --set``).
They are in pJ, except under ``eyeriss-normalized``, whose unit is one 16-bit MAC (``Accelerator.energy_unit``).

A user's TOML file either names a ``base = "eyeriss"`` (the default) and sets the fields to change, flat
(``array_rows = 24``) or in a ``[parameters]`` table, or describes a whole accelerator in the built-in shape.
"""

import dataclasses
import math
import numbers
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, fields
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

from ..errors import HardwareModelError
from . import sparsity, tech

DATAFLOWS = ("rs", "ws", "os", "is", "nlr")
RF_COUNTS = ("per-use", "fills")
ENERGY_FIELDS = ("e_mac_pj", "e_rf_pj", "e_noc_pj", "e_glb_pj", "e_dram_pj")
WRITE_ENERGY_FIELDS = ("e_rf_write_pj", "e_glb_write_pj", "e_dram_write_pj")
# The unit a data file must state for each parameter (None: unitless). Energies are in the tech table's unit.
UNITS = {
    "dataflow": None, "array_rows": "PEs", "array_cols": "PEs", "rf_weight_words": "words",
    "rf_input_words": "words", "rf_psum_words": "words", "glb_bytes": "bytes", "word_bits": "bits",
    "clock_mhz": "MHz", "dram_bytes_per_cycle": "bytes/cycle", "glb_bytes_per_cycle": "bytes/cycle",
    "weights_bypass_glb": None, "systolic": None, "zero_gating": None, "zero_skipping": None,
    "dram_format": None, "weight_format": None, "rf_fill_stalls": None, "dram_overlap": None, "psum_bits": "bits",
    "rf_counts": None, "noc_words_per_cycle": "words/cycle", "rf_accesses_per_cycle": "accesses/cycle",
    "noc_multicast_share": "fraction of e_noc_pj", "noc_forward_share": "fraction of e_noc_pj",
}


@dataclass(frozen=True)
class Accelerator:
    """A spatial accelerator as the dataflow predictor (``lean.hw.predictor``) costs it.

    Sizes are in the unit their name ends with; ``*_words`` count ``word_bits``-wide words; ``e_*_pj`` are the
    energies of one MAC and of one word's access at each level, in ``energy_unit``. ``tech`` names the table
    they were taken from.
    """

    name: str
    dataflow: str
    array_rows: int
    array_cols: int
    rf_weight_words: int
    rf_input_words: int
    rf_psum_words: int
    glb_bytes: int
    word_bits: int
    clock_mhz: float
    dram_bytes_per_cycle: float
    glb_bytes_per_cycle: float
    e_mac_pj: float
    e_rf_pj: float
    e_noc_pj: float
    e_glb_pj: float
    e_dram_pj: float
    weights_bypass_glb: bool = False
    systolic: bool = False
    zero_gating: bool = False
    zero_skipping: bool = False
    dram_format: str = "dense"     # maps in DRAM: dense, bitmask, rlc (Eyeriss's run-length code), csr
    weight_format: str = "dense"   # weights in DRAM and the buffer (lean.hw.sparsity.FORMATS)
    rf_fill_stalls: bool = False  # a PE stops computing while its register file is filled (not double-buffered)
    dram_overlap: bool = True     # DRAM transfers hide behind compute (a double-buffered buffer); else they add
    psum_bits: int = 0            # width of partial sums on chip and when spilled (0: the activations' width)
    # register-file accesses counted: "per-use" (each MAC reads its operands and updates its partial sum there, as
    # Timeloop counts) or "fills" (only what enters and leaves the RF, as the DNN-Chip Predictor's code counts)
    rf_counts: str = "per-use"
    noc_words_per_cycle: float = 0.0     # words the array network moves a cycle (0: never the bound)
    rf_accesses_per_cycle: float = 0.0   # accesses a PE's register files serve a cycle (0: never the bound)
    noc_multicast_share: float = 1.0     # each further destination of a multicast, as a share of e_noc_pj
    noc_forward_share: float = 1.0       # a partial sum's PE-to-PE hop, as a share of e_noc_pj
    # a write's energy where it differs from a read's (0: as a read; the tables give one cost per access)
    e_rf_write_pj: float = 0.0
    e_glb_write_pj: float = 0.0
    e_dram_write_pj: float = 0.0
    tech: str = "eyeriss-normalized"

    def __post_init__(self):
        if self.dataflow not in DATAFLOWS:
            raise HardwareModelError(f"unknown dataflow {self.dataflow!r}; choose one of: {', '.join(DATAFLOWS)}")
        for f in ("array_rows", "array_cols", "glb_bytes", "word_bits"):
            if getattr(self, f) < 1:
                raise HardwareModelError(f"{f} must be >= 1; got {getattr(self, f)}")
        for f in ("rf_weight_words", "rf_input_words", "rf_psum_words", "psum_bits"):
            if getattr(self, f) < 0:
                raise HardwareModelError(f"{f} must be >= 0; got {getattr(self, f)}")
        for f in ("clock_mhz", "dram_bytes_per_cycle", "glb_bytes_per_cycle"):
            if not 0 < getattr(self, f) < math.inf:
                raise HardwareModelError(f"{f} must be a finite number > 0; got {getattr(self, f)}")
        if self.rf_counts not in RF_COUNTS:
            raise HardwareModelError(f"rf_counts must be one of {', '.join(RF_COUNTS)}; got {self.rf_counts!r}")
        sparsity.check_format("dram_format", self.dram_format)
        sparsity.check_format("weight_format", self.weight_format)
        for f in (*ENERGY_FIELDS, *WRITE_ENERGY_FIELDS, "noc_words_per_cycle", "rf_accesses_per_cycle",
                  "noc_multicast_share", "noc_forward_share"):
            if not 0 <= getattr(self, f) < math.inf:   # NaN fails too
                raise HardwareModelError(f"{f} must be a finite number >= 0; got {getattr(self, f)}")
        tech.table(self.tech)  # an unknown table name fails here, listing the known ones

    @property
    def pes(self) -> int:
        """Number of processing elements."""
        return self.array_rows * self.array_cols

    @property
    def energy_unit(self) -> str:
        """The unit of the ``e_*_pj`` fields and of every energy predicted on this accelerator: ``"pJ"``, or
        ``"x 16-bit MAC"`` for the ``eyeriss-normalized`` table (1 = one 16-bit MAC at ``e_mac_pj`` = 1)."""
        return tech.energy_unit(self.tech)

    def area_mm2(self) -> dict[str, float]:
        """Area by component (mm2) from the technology tables (``tech.AREA``) of this accelerator's node.

        65 nm (``eyeriss-normalized``, ``65nm``): Chen's per-PE logic area (datapath and control) and storage by
        capacity; 45 nm (``horowitz45``): Aladdin's multiplier and adder per PE, register files as registers (up
        to 64 words) or SRAM, the buffer as CACTI SRAM. The network, control outside the PEs and I/O are not in
        the tables (Eyeriss: about a quarter of its 12.25 mm2 core).

        Returns
        -------
        dict
            ``pe_logic`` (or ``mac``), ``rf``, ``glb``, and ``total``.
        """
        node = tech.AREA_NODE[self.tech]
        words = {"weight": self.rf_weight_words, "input": self.rf_input_words, "output": self.rf_psum_words}
        if node == "65nm":
            pe = tech.AREA["65nm"]["pe_logic_um2"].value
            rf = sum(tech.storage_area_um2(node, w * self.word_bits / 8) for w in words.values())
            out = {"pe_logic": pe * self.pes}
        else:
            reg = tech.AREA["45nm"]["register_um2_per_bit"].value
            rf = sum(w * self.word_bits * reg if w <= 64 else tech.storage_area_um2(node, w * self.word_bits / 8)
                     for w in words.values())
            out = {"mac": tech.mac_area_um2(node, self.word_bits) * self.pes}
        out.update(rf=rf * self.pes, glb=tech.storage_area_um2(node, self.glb_bytes))
        out = {k: v / 1e6 for k, v in out.items()}
        out["total"] = sum(out.values())
        return out

    def leakage_mw(self) -> dict[str, float] | None:
        """Leakage power by component (mW) from the 45 nm tables (Aladdin's logic and registers, CACTI's SRAM);
        ``None`` at 65 nm, where no source gives it (Eyeriss reports none).

        Returns
        -------
        dict or None
            ``mac``, ``rf``, ``glb``, ``total``.
        """
        if tech.AREA_NODE[self.tech] != "45nm":
            return None
        a = tech.AREA["45nm"]
        b = self.word_bits
        mac = a["mult_32b_leak_mw"].value * (b / 32.0) ** 2 + a["adder_32b_leak_mw"].value * 2 * b / 32.0
        rf_bits = (self.rf_weight_words + self.rf_input_words + self.rf_psum_words) * b
        out = {"mac": mac * self.pes, "rf": a["register_leak_mw_per_bit"].value * rf_bits * self.pes,
               "glb": a["sram_128kB_leak_mw"].value * self.glb_bytes / 131072}
        out["total"] = sum(out.values())
        return out

    def with_overrides(self, **values: Any) -> "Accelerator":
        """A copy with fields replaced; values given as strings (from the command line) are converted.

        Setting ``dataflow="nlr"`` without RF sizes also empties the RFs (no local reuse keeps nothing in a PE);
        changing ``tech`` without giving energies takes all five ``e_*_pj`` from the new table at ``word_bits``,
        so they stay in ``energy_unit``, and writes cost as reads again (``e_*_write_pj`` = 0). Changing
        ``word_bits`` without giving energies scales each ``e_*_pj`` and ``e_*_write_pj`` as the tech table scales
        it between the two widths (an energy is per word: a wider word costs more), so the same workload is not
        silently made cheaper or dearer by the word width alone.

        Parameters
        ----------
        **values
            Field name -> new value (a value of the field's type, or a string to convert).

        Returns
        -------
        Accelerator
            The changed copy (checked again).
        """
        converted = convert_overrides(values, {f.name: f.type for f in fields(self)}, "accelerator")
        if "dataflow" in converted and converted["dataflow"] == "nlr" and "rf_weight_words" not in converted:
            converted.update(rf_weight_words=0, rf_input_words=0, rf_psum_words=0)
        new_tech = converted.get("tech", self.tech)
        new_bits = converted.get("word_bits", self.word_bits)
        if new_tech != self.tech and not any(f in converted for f in ENERGY_FIELDS):
            # the new table's energies, and writes as its reads (the tables give one cost per access)
            converted = {**_energies(new_tech, new_bits), **{f: 0.0 for f in WRITE_ENERGY_FIELDS}, **converted}
        elif new_bits != self.word_bits and not any(f in converted for f in ENERGY_FIELDS):
            before, after = _energies(self.tech, self.word_bits), _energies(self.tech, new_bits)
            scaled = {f: getattr(self, f) * after[f] / before[f] for f in ENERGY_FIELDS}
            scaled.update({w: getattr(self, w) * after[r] / before[r]
                           for w, r in zip(WRITE_ENERGY_FIELDS, ("e_rf_pj", "e_glb_pj", "e_dram_pj"), strict=True)})
            converted = {**scaled, **converted}
        return dataclasses.replace(self, **converted)

    def to_dict(self) -> dict[str, Any]:
        """Every field by name (JSON-able)."""
        return dataclasses.asdict(self)


def _convert(key, value, kind):
    """``value`` as a ``kind`` (bool, int, float or str): strings are parsed, ints widen to float, others must fit."""
    name = getattr(kind, "__name__", kind)
    if isinstance(value, str):
        try:
            if kind is bool:
                if value.lower() not in ("true", "false", "1", "0", "yes", "no"):
                    raise ValueError
                return value.lower() in ("true", "1", "yes")
            if kind is int:
                return int(value)
            if kind is float:
                return float(value)
        except ValueError:
            raise HardwareModelError(f"{key}={value!r} is not a valid {name}") from None
        return value
    fits = {bool: isinstance(value, bool),
            int: isinstance(value, numbers.Integral) and not isinstance(value, bool),
            float: isinstance(value, numbers.Real) and not isinstance(value, bool),
            str: False}.get(kind, True)
    if not fits:
        raise HardwareModelError(f"{key}={value!r} is not a valid {name}")
    return kind(value) if kind in (int, float) else value


def convert_overrides(values: Mapping[str, Any], types: Mapping[str, Any], what: str,
                      listed: str = "known") -> dict[str, Any]:
    """``values`` converted to the types of the fields they set (``_convert``); a name not in ``types`` is one
    ``HardwareModelError`` ("unknown ``what`` parameter ...", then ``listed``: the names it takes)."""
    converted = {}
    for key, value in values.items():
        if key not in types:
            raise HardwareModelError(f"unknown {what} parameter {key!r}; {listed}: {', '.join(types)}")
        converted[key] = _convert(key, value, types[key])
    return converted


def parse_overrides(items: Iterable[str] | Mapping[str, Any] | None) -> dict[str, Any]:
    """Accelerator parameters to change, from ``"key=value"`` strings (``lean hw predict --set``) or a mapping.

    Parameters
    ----------
    items : iterable of str, or mapping, or None
        ``["array_rows=24", "dataflow=ws"]`` (a single string is one item), or ``{"array_rows": 24}``.

    Returns
    -------
    dict
        Key -> value (strings stay strings; ``Accelerator.with_overrides`` converts and checks them).
    """
    if items is None:
        return {}
    if isinstance(items, Mapping):
        return dict(items)
    if isinstance(items, str):
        items = [items]
    values = {}
    for item in items:
        key, sep, value = str(item).partition("=")
        if not sep or not key.strip():
            raise HardwareModelError(f"--set takes key=value; got {item!r}")
        values[key.strip()] = value.strip()
    return values


# ------------------------------------------------------------------------------------------ data files

def _energies(tech_name, word_bits, mac_pj=1.0):
    e = tech.unit_energies_pj(tech_name, word_bits, mac_pj)
    return {"e_mac_pj": e["mac"], "e_rf_pj": e["rf"], "e_noc_pj": e["noc"], "e_glb_pj": e["glb"],
            "e_dram_pj": e["dram"]}


def _parameters(table, energy_unit, strict):
    """Field -> value from a ``[parameters]`` table; entries are values or ``{value, unit, source}`` tables.

    A unit given must be the one the field is in; ``strict`` (the built-in files) also requires a unit wherever
    the field has one, and a source for every entry.
    """
    if not isinstance(table, dict):
        raise HardwareModelError("[parameters] must be a table of field = { value, unit, source }")
    known = [f.name for f in fields(Accelerator) if f.name not in ("name", "tech")]
    values = {}
    for key, entry in table.items():
        if key not in known:
            raise HardwareModelError(f"unknown accelerator parameter {key!r}; known: {', '.join(known)}")
        unit = energy_unit if key in (*ENERGY_FIELDS, *WRITE_ENERGY_FIELDS) else UNITS[key]
        if isinstance(entry, dict):
            extra = sorted(set(entry) - {"value", "unit", "source"})
            if "value" not in entry or extra:
                raise HardwareModelError(f"parameter {key} must be {{ value = ..., unit = ..., source = ... }}"
                                         + (f"; unknown keys {extra}" if extra else ""))
            given = entry.get("unit")
            if given is not None and given != unit:
                expected = f"in {unit!r}" if unit else "unitless"
                raise HardwareModelError(f"parameter {key} is {expected}; the file says {given!r}")
            if strict and ((unit and given is None) or not entry.get("source")):
                raise HardwareModelError(f"parameter {key} needs " + (f"its unit ({unit}) and " if unit else "")
                                         + "a source")
            entry = entry["value"]
        elif strict:
            raise HardwareModelError(f"parameter {key} needs a value, " + ("a unit, " if unit else "") + "and a source")
        values[key] = entry
    return values


def _from_data(data, where, *, tech_name=None, strict=False):
    """An accelerator from a parsed data file: a ``base`` and changes, or a whole description."""
    if not isinstance(data, dict):
        raise HardwareModelError(f"{where} must be a TOML table")
    data = {k: v for k, v in data.items() if k not in ("description", "source")}
    base = data.pop("base", None)
    name = data.pop("name", None) or Path(where).stem
    file_tech = data.pop("tech", None)
    tech_name = tech_name or file_tech
    if tech_name is not None and (not isinstance(tech_name, str) or tech_name not in tech.TABLES):
        raise HardwareModelError(f"{where}: unknown technology table {tech_name!r}; known: {', '.join(tech.TABLES)}")
    table = data.pop("parameters", None)
    if table is not None and data:
        raise HardwareModelError(f"{where}: unknown top-level keys {sorted(data)}; expected name, description, "
                                 "source, tech, base and a [parameters] table")
    if table is None:  # the flat format: the fields to change sit at the top level
        table, base = data, base or "eyeriss"
    try:
        if base is not None:
            base = RENAMED.get(base, base) if isinstance(base, str) else base
            if not isinstance(base, str) or base not in BUILTIN:
                raise HardwareModelError(f"unknown base {base!r}; built in: {', '.join(BUILTIN)}")
            acc = BUILTIN[base]()
            unit = tech.energy_unit(tech_name or acc.tech)
            changes = {**({"tech": tech_name} if tech_name else {}), **_parameters(table, unit, strict)}
            return acc.with_overrides(name=name, **changes)
        if tech_name is None:
            raise HardwareModelError(f"a whole accelerator needs a tech (one of {', '.join(tech.TABLES)}) or a base")
        values = _parameters(table, tech.energy_unit(tech_name), strict)
        required = [f.name for f in fields(Accelerator)
                    if f.default is dataclasses.MISSING and f.name != "name" and f.name not in ENERGY_FIELDS]
        missing = [f for f in required if f not in values]
        if missing:
            raise HardwareModelError(f"missing parameters {missing} (or name a base to start from)")
        types = {f.name: f.type for f in fields(Accelerator)}
        values = {key: _convert(key, value, types[key]) for key, value in values.items()}
        return Accelerator(name=name, tech=tech_name, **{**_energies(tech_name, values["word_bits"]), **values})
    except HardwareModelError as exc:
        raise HardwareModelError(f"{where}: {exc}") from exc


@cache
def _builtin_text(name):
    return resources.files(__package__).joinpath("accelerators", f"{name}.toml").read_text()


def _builtin(name, tech_name=None):
    where = f"lean/hw/accelerators/{name}.toml"
    try:
        data = tomllib.loads(_builtin_text(name))
    except tomllib.TOMLDecodeError as exc:
        raise HardwareModelError(f"{where} could not be parsed: {exc}") from exc
    return _from_data(data, where, tech_name=tech_name, strict=True)


def eyeriss(tech_name: str | None = None) -> Accelerator:
    """Eyeriss (``accelerators/eyeriss.toml``); ``tech_name`` replaces its table (``eyeriss-normalized``)."""
    return _builtin("eyeriss", tech_name)


def tpu_like(tech_name: str | None = None) -> Accelerator:
    """A TPU-like systolic array (``accelerators/tpu-like.toml``); ``tech_name`` replaces its table (horowitz45)."""
    return _builtin("tpu-like", tech_name)


def shidiannao_like(tech_name: str | None = None) -> Accelerator:
    """A ShiDianNao-like array (``accelerators/shidiannao-like.toml``); ``tech_name`` replaces its table."""
    return _builtin("shidiannao-like", tech_name)


def diannao(tech_name: str | None = None) -> Accelerator:
    """DianNao (``accelerators/diannao.toml``); ``tech_name`` replaces its table."""
    return _builtin("diannao", tech_name)


def smartexchange(tech_name: str | None = None) -> Accelerator:
    """The SmartExchange accelerator (``accelerators/smartexchange.toml``; issue 18's comparison)."""
    return _builtin("smartexchange", tech_name)


def scnn(tech_name: str | None = None) -> Accelerator:
    """SCNN (``accelerators/scnn.toml``)."""
    return _builtin("scnn", tech_name)


def cambricon_x(tech_name: str | None = None) -> Accelerator:
    """Cambricon-X (``accelerators/cambricon-x.toml``)."""
    return _builtin("cambricon-x", tech_name)


def bit_pragmatic(tech_name: str | None = None) -> Accelerator:
    """Bit-pragmatic's tile as a dense array (``accelerators/bit-pragmatic.toml``; ``lean.hw.accel.compare``
    turns its MACs bit-serial)."""
    return _builtin("bit-pragmatic", tech_name)


BUILTIN = {"eyeriss": eyeriss, "tpu-like": tpu_like, "shidiannao-like": shidiannao_like,
           "diannao": diannao, "smartexchange": smartexchange, "scnn": scnn, "cambricon-x": cambricon_x,
           "bit-pragmatic": bit_pragmatic}
RENAMED = {"diannao-like": "diannao"}     # old built-in names that ``load`` still takes


def from_file(path: str | Path) -> Accelerator:
    """An accelerator from a TOML file.

    Either ``base = "eyeriss"`` (the default base) with the fields to change, flat or in a ``[parameters]``
    table, or a whole accelerator in the built-ins' shape (``name``, ``tech``, ``[parameters]`` with every field).

    Parameters
    ----------
    path : str or Path
        A ``.toml`` file.

    Returns
    -------
    Accelerator
        Named by the file's ``name``, else by the file's stem.
    """
    path = Path(path)
    if not path.is_file():
        raise HardwareModelError(f"accelerator file {path} does not exist")
    try:
        data = tomllib.loads(path.read_text())
    except ValueError as exc:  # TOMLDecodeError, UnicodeDecodeError
        raise HardwareModelError(f"{path} could not be parsed: {exc}") from exc
    return _from_data(data, str(path))


def load(spec: str | Path) -> Accelerator:
    """An accelerator from a built-in name (``BUILTIN``) or a ``.toml`` file.

    Parameters
    ----------
    spec : str or Path
        A name in ``BUILTIN`` (or an old name in ``RENAMED``) or a path ending in ``.toml``.

    Returns
    -------
    Accelerator
    """
    spec = RENAMED.get(spec, spec) if isinstance(spec, str) else spec
    if spec in BUILTIN:
        return BUILTIN[spec]()
    if str(spec).endswith(".toml"):
        return from_file(spec)
    raise HardwareModelError(f"unknown accelerator {spec!r}; built in: {', '.join(BUILTIN)}, or a .toml file")


def catalog() -> list[dict[str, Any]]:
    """The built-in accelerators, one ``Accelerator.to_dict()`` each with its ``area_mm2`` (the rows of
    ``lean hw accels --json``).

    Returns
    -------
    list of dict
        In ``BUILTIN`` order.
    """
    return [{**acc.to_dict(), "area_mm2": acc.area_mm2()["total"]} for acc in (BUILTIN[n]() for n in BUILTIN)]
