"""Accelerator descriptions: frozen dataclasses whose field names carry their units.

Built in (``BUILTIN``):

- ``eyeriss``: Chen et al., JSSC 2017: 12x14 PEs, row-stationary, 108 kB global buffer holding input maps and
  partial sums (filters go from DRAM straight to the array), per-PE scratchpads of 224 filter, 12 input and 24
  partial-sum words, 16-bit, 200 MHz; zero gating of MACs on zero inputs; run-length compression of maps off
  chip (``dram_compression``). Its off-chip bandwidth is taken as 8 bytes a cycle (a 64-bit bus at the core
  clock; assumed, the paper gives no sustained figure).
- ``tpu-like``: a weight-stationary systolic array after Jouppi et al., ISCA 2017: 256x256 8-bit MACs, 700 MHz,
  24 MiB unified buffer, ~30 GB/s of weight and activation memory bandwidth (43 bytes a cycle).
- ``shidiannao-like``: an output-stationary 8x8 array after Du et al., ISCA 2015: 16-bit, 1 GHz, 288 kB of
  on-chip buffers (NBin + NBout + SB); we give it a modest 4 bytes/cycle DRAM link for networks that do not fit.
- ``diannao-like``: no local reuse, a 16x16 multiplier array with adder trees after Chen et al., ASPLOS 2014;
  16-bit, 1 GHz, 36 kB of buffers, 16 bytes/cycle DRAM.

Energies per access (``e_*_pj``, one ``word_bits`` word) come from a technology table of ``lean.hw.tech`` when
an accelerator is built, and can be overridden like any other field (``with_overrides``/``--set``).
"""

import dataclasses
from dataclasses import dataclass, fields

from . import tech

DATAFLOWS = ("rs", "ws", "os", "is", "nlr")


@dataclass(frozen=True)
class Accelerator:
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
    dram_compression: bool = False
    rlc_overhead: float = 0.1  # extra fraction of the dense size spent on run-length codes
    tech: str = "eyeriss-normalized"

    def __post_init__(self):
        if self.dataflow not in DATAFLOWS:
            raise ValueError(f"unknown dataflow {self.dataflow!r}; choose one of: {', '.join(DATAFLOWS)}")
        for f in ("array_rows", "array_cols", "glb_bytes", "word_bits"):
            if getattr(self, f) < 1:
                raise ValueError(f"{f} must be >= 1; got {getattr(self, f)}")
        for f in ("rf_weight_words", "rf_input_words", "rf_psum_words"):
            if getattr(self, f) < 0:
                raise ValueError(f"{f} must be >= 0; got {getattr(self, f)}")
        for f in ("clock_mhz", "dram_bytes_per_cycle", "glb_bytes_per_cycle"):
            if not getattr(self, f) > 0:
                raise ValueError(f"{f} must be > 0; got {getattr(self, f)}")
        for f in ("e_mac_pj", "e_rf_pj", "e_noc_pj", "e_glb_pj", "e_dram_pj", "rlc_overhead"):
            if getattr(self, f) < 0:
                raise ValueError(f"{f} must be >= 0; got {getattr(self, f)}")

    @property
    def pes(self):
        return self.array_rows * self.array_cols

    def with_overrides(self, **values):
        """A copy with fields replaced; values given as strings (from the command line) are converted."""
        types = {f.name: f.type for f in fields(self)}
        converted = {}
        for key, value in values.items():
            if key not in types:
                raise ValueError(f"unknown accelerator parameter {key!r}; known: {', '.join(types)}")
            converted[key] = _convert(key, value, types[key])
        if "dataflow" in converted and converted["dataflow"] == "nlr" and "rf_weight_words" not in converted:
            converted.update(rf_weight_words=0, rf_input_words=0, rf_psum_words=0)
        return dataclasses.replace(self, **converted)

    def to_dict(self):
        return dataclasses.asdict(self)


def _convert(key, value, kind):
    if not isinstance(value, str):
        return value
    try:
        if kind in (bool, "bool"):
            if value.lower() not in ("true", "false", "1", "0", "yes", "no"):
                raise ValueError
            return value.lower() in ("true", "1", "yes")
        if kind in (int, "int"):
            return int(value)
        if kind in (float, "float"):
            return float(value)
    except ValueError:
        raise ValueError(f"{key}={value!r} is not a valid {getattr(kind, '__name__', kind)}") from None
    return value


def _energies(tech_name, word_bits, mac_pj=1.0):
    e = tech.unit_energies_pj(tech_name, word_bits, mac_pj)
    return {"e_mac_pj": e["mac"], "e_rf_pj": e["rf"], "e_noc_pj": e["noc"], "e_glb_pj": e["glb"],
            "e_dram_pj": e["dram"]}


def eyeriss(tech_name="eyeriss-normalized"):
    return Accelerator("eyeriss", "rs", 12, 14, 224, 12, 24, 108 * 1024, 16, 200.0, 8.0, 64.0,
                       **_energies(tech_name, 16), weights_bypass_glb=True, zero_gating=True,
                       dram_compression=False, tech=tech_name)


def tpu_like(tech_name="horowitz45"):
    return Accelerator("tpu-like", "ws", 256, 256, 1, 0, 0, 24 * 1024 * 1024, 8, 700.0, 30e9 / 700e6, 256.0,
                       **_energies(tech_name, 8), systolic=True, tech=tech_name)


def shidiannao_like(tech_name="horowitz45"):
    return Accelerator("shidiannao-like", "os", 8, 8, 0, 0, 1, 288 * 1024, 16, 1000.0, 4.0, 64.0,
                       **_energies(tech_name, 16), tech=tech_name)


def diannao_like(tech_name="horowitz45"):
    return Accelerator("diannao-like", "nlr", 16, 16, 0, 0, 0, 36 * 1024, 16, 1000.0, 16.0, 64.0,
                       **_energies(tech_name, 16), tech=tech_name)


BUILTIN = {"eyeriss": eyeriss, "tpu-like": tpu_like, "shidiannao-like": shidiannao_like,
           "diannao-like": diannao_like}


def from_file(path):
    """An accelerator from a TOML file: ``base = "eyeriss"`` (optional) and any fields to set."""
    import tomllib
    from pathlib import Path

    path = Path(path)
    if not path.is_file():
        raise ValueError(f"accelerator file {path} does not exist")
    try:
        data = tomllib.loads(path.read_text())
    except ValueError as exc:
        raise ValueError(f"{path} could not be parsed: {exc}") from None
    base = data.pop("base", "eyeriss")
    if base not in BUILTIN:
        raise ValueError(f"{path}: unknown base {base!r}; built in: {', '.join(BUILTIN)}")
    return BUILTIN[base]().with_overrides(name=data.pop("name", path.stem), **data)


def load(spec):
    if spec in BUILTIN:
        return BUILTIN[spec]()
    if str(spec).endswith(".toml"):
        return from_file(spec)
    raise ValueError(f"unknown accelerator {spec!r}; built in: {', '.join(BUILTIN)}, or a .toml file")
