"""Mappings: how a layer's loop nest is tiled over an accelerator's storage levels and unrolled over its array.

A conv layer (per group) is seven nested loops over N (images), K (output channels), C (input channels), P, Q
(output rows and columns) and R, S (filter rows and columns). A ``Mapping`` splits each dimension into factors,
one per place in the hierarchy, outermost first:

- ``dram``: temporal loops over tiles held in the global buffer, in the order ``orders["dram"]``;
- ``glb``: temporal loops over the tiles sent to the array, in ``orders["glb"]``;
- ``rows`` and ``cols``: spatial loops, each factor of a dimension unrolled over that many rows (columns) of PEs;
- ``rf``: temporal loops inside each PE over what its register file (scratchpad) holds, in ``orders["rf"]``.

The product of a dimension's factors covers it (it may exceed it: the extra iterations are padding and show as
lost utilization). Orders are strings of dimension letters, outermost first; dims left out are trivial there.
A dataflow is a set of constraints on mappings (which dims may be unrolled on rows and on columns, which may be
held in the register file; ``lean.hw.mapper``), as in Timeloop, not a formula.

The file format (``lean hw predict --mapping FILE``, ``--show-mapping``) is a table per layer name (``"*"`` for
every layer not named), in TOML or JSON::

    [conv1]
    dram = { K = 3, P = 8 }                 # factors; omitted dims are 1
    glb = { C = 3, Q = 55 }
    rows = { R = 11 }
    cols = { K = 2, P = 7 }
    rf = { K = 16, S = 11 }
    orders = { dram = "PK", glb = "CQ", rf = "KS" }

``dram`` may be left out: it then takes what the other levels leave of each dimension (rounded up).
"""

import json
import math
import numbers
import tomllib
from collections.abc import Mapping as AbcMapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import HardwareModelError

DIMS = ("N", "K", "C", "P", "Q", "R", "S")
TEMPORAL = ("dram", "glb", "rf")         # temporal levels, outermost first
PLACES = ("dram", "glb", "rows", "cols", "rf")   # every place a factor can go, outermost first
SPATIAL = ("rows", "cols")


@dataclass(frozen=True)
class Mapping:
    """One layer's mapping: ``factors[place][dim]`` for every place in ``PLACES`` and dim in ``DIMS`` (ints >= 1),
    and a loop order per temporal level (``orders[level]``: a permutation of ``DIMS``, outermost first)."""

    factors: dict
    orders: dict

    def to_dict(self) -> dict[str, Any]:
        """The file form: non-trivial factors per place, and the orders without trivial dims."""
        out = {place: {d: f for d, f in self.factors[place].items() if f > 1} for place in PLACES}
        out["orders"] = {lv: "".join(d for d in self.orders[lv] if self.factors[lv][d] > 1) for lv in TEMPORAL}
        return out


def layer_dims(layer) -> dict[str, int]:
    """The seven loop bounds of one group of ``layer`` (an fc layer is a 1x1 conv on a 1x1 map)."""
    if layer.kind == "fc":
        return {"N": layer.n, "K": layer.k, "C": layer.c, "P": 1, "Q": 1, "R": 1, "S": 1}
    return {"N": layer.n, "K": layer.k // layer.groups, "C": layer.c_per_group, "P": layer.p, "Q": layer.q,
            "R": layer.r, "S": layer.s}


def _positive_int(value, where):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise HardwareModelError(f"{where} must be a positive integer; got {value!r}")
    return int(value)


def _order(text, where):
    if not isinstance(text, str) or len(set(text)) != len(text) or not set(text) <= set(DIMS):
        raise HardwareModelError(f"{where} must be dimension letters from {''.join(DIMS)}, each at most once; "
                                 f"got {text!r}")
    # dims not named are trivial at that level: put them outermost, where a factor of 1 changes nothing
    return "".join(d for d in DIMS if d not in text) + text


def from_dict(data: AbcMapping, dims: dict[str, int], where: str = "mapping") -> Mapping:
    """A ``Mapping`` for a layer with loop bounds ``dims``, from the file form (see the module docstring).

    Parameters
    ----------
    data : mapping
        ``{"dram": {...}, "glb": {...}, "rows": {...}, "cols": {...}, "rf": {...}, "orders": {...}}``; every key
        optional. Without ``dram`` the DRAM level takes the rest of each dimension.
    dims : dict
        The layer's loop bounds (``layer_dims``).
    where : str
        What to call the mapping in error messages.

    Returns
    -------
    Mapping
    """
    if not isinstance(data, AbcMapping):
        raise HardwareModelError(f"{where} must be a table of places ({', '.join(PLACES)}) and orders")
    unknown = sorted(set(data) - set(PLACES) - {"orders"})
    if unknown:
        raise HardwareModelError(f"{where}: unknown keys {unknown}; expected {', '.join(PLACES)} and orders")
    factors = {}
    for place in PLACES:
        given = data.get(place, {})
        if not isinstance(given, AbcMapping):
            raise HardwareModelError(f"{where}.{place} must map dimension letters to factors")
        bad = sorted(set(given) - set(DIMS))
        if bad:
            raise HardwareModelError(f"{where}.{place}: unknown dimensions {bad}; the dimensions are {''.join(DIMS)}")
        factors[place] = {d: _positive_int(given.get(d, 1), f"{where}.{place}.{d}") for d in DIMS}
        big = [f"{d}={f}" for d, f in factors[place].items() if f > dims[d]]
        if big:
            raise HardwareModelError(f"{where}.{place}: a factor larger than its dimension ({', '.join(big)}; the "
                                     f"layer has {', '.join(f'{d}={dims[d]}' for d in DIMS)})")
    if "dram" not in data:
        for d in DIMS:
            inner = math.prod(factors[p][d] for p in PLACES[1:])
            factors["dram"][d] = -(-dims[d] // inner)
    covered = {d: math.prod(factors[p][d] for p in PLACES) for d in DIMS}
    short = [f"{d} covers {covered[d]} of {dims[d]}" for d in DIMS if covered[d] < dims[d]]
    if short:
        raise HardwareModelError(f"{where}: the factors do not cover the layer ({'; '.join(short)})")
    orders_given = data.get("orders", {})
    if not isinstance(orders_given, AbcMapping) or set(orders_given) - set(TEMPORAL):
        raise HardwareModelError(f"{where}.orders maps {', '.join(TEMPORAL)} to loop orders")
    orders = {lv: _order(orders_given.get(lv, ""), f"{where}.orders.{lv}") for lv in TEMPORAL}
    return Mapping(factors, orders)


def load_mappings(source: str | Path | AbcMapping) -> dict[str, dict]:
    """Mappings by layer name from a TOML or JSON file (``lean hw predict --mapping``), or a mapping of them.

    Parameters
    ----------
    source : str, Path or mapping
        A ``.toml`` or ``.json`` file, or ``{"conv1": {...}, "*": {...}}`` itself.

    Returns
    -------
    dict
        Layer name (or ``"*"``) -> the file form of its mapping; ``from_dict`` checks each against its layer.
    """
    if isinstance(source, (str, Path)):
        path = Path(source)
        what = f"--mapping {path}"
        try:
            text = path.read_text()
            data = tomllib.loads(text) if path.suffix == ".toml" else json.loads(text)
        except (OSError, ValueError) as exc:  # ValueError covers JSON, TOML and Unicode errors
            raise HardwareModelError(f"{what}: {exc}") from exc
    else:
        data, what = source, "mappings"
    if not isinstance(data, AbcMapping) or not all(isinstance(v, AbcMapping) for v in data.values()):
        raise HardwareModelError(f"{what} must map layer names to mappings")
    return {str(k): dict(v) for k, v in data.items()}


def dumps(mappings: dict[str, dict], fmt: str = "toml") -> str:
    """Mappings by layer name (file form) as TOML or JSON text that ``load_mappings`` reads back.

    Parameters
    ----------
    mappings : dict
        Layer name -> ``Mapping.to_dict()``.
    fmt : str
        ``"toml"`` or ``"json"``.

    Returns
    -------
    str
    """
    if fmt == "json":
        return json.dumps(mappings, indent=1)
    lines = []
    for name, m in mappings.items():
        lines.append(f"[{json.dumps(name)}]")
        for key, value in m.items():
            if isinstance(value, dict) and value:
                inner = ", ".join(f"{k} = {json.dumps(v)}" for k, v in value.items())
                lines.append(f"{key} = {{ {inner} }}")
        lines.append("")
    return "\n".join(lines)
