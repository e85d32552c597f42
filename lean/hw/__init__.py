"""Hardware cost models: workloads, technology tables, accelerator descriptions, the dataflow predictor.

The hardware rooms read models only through ``lean.hw.workload`` (which reads checkpoints through ``lean.nn``).
``predict`` is ``lean hw predict`` as one call; ``workload_catalog`` and ``accelerator_catalog`` are
``lean hw workloads`` and ``lean hw accels``.
"""

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from . import accelerator, predictor, tech
from . import workload as _workload
from .accelerator import Accelerator, parse_overrides
from .accelerator import catalog as accelerator_catalog
from .mapping import load_mappings
from .predictor import OBJECTIVES
from .workload import BUILTIN, LayerShape, Workload, from_checkpoint, from_file, from_model, load
from .workload import catalog as workload_catalog


def predict(workload: str | Path | Workload, accel: str | Path | Accelerator, *, dataflow: str | None = None,
            batch: int | None = None, overrides: Iterable[str] | Mapping[str, Any] | None = None,
            objective: str = "energy", mappings: str | Path | Mapping[str, Any] | None = None,
            effort: str = "default") -> dict[str, Any]:
    """Per-layer and total energy, latency and DRAM traffic of a workload on an accelerator (``lean hw predict``).

    Parameters
    ----------
    workload : str, Path or Workload
        A spec for ``lean.hw.workload.load``: a built-in name (``alexnet``, ``vgg16``, ...), ``net:NAME`` or a
        lean net name, a ``.h5`` checkpoint, a ``.toml``/``.json`` layer file; or a ``Workload``.
    accel : str, Path or Accelerator
        A built-in accelerator name (``eyeriss``, ``tpu-like``, ...), a ``.toml`` file, or an ``Accelerator``.
    dataflow : str, optional
        ``rs``, ``ws``, ``os``, ``is`` or ``nlr``, replacing the accelerator's (applied after ``overrides``).
    batch : int, optional
        Batch size of the workload.
    overrides : iterable of str, or mapping, optional
        Accelerator parameters to change: ``["array_rows=24"]`` (as ``--set``) or ``{"array_rows": 24}``.
    objective : str
        What the mapping search minimizes: ``"energy"``, ``"latency"`` or ``"edp"``.
    mappings : str, Path or mapping, optional
        Given mappings by layer name (``"*"`` for every layer not named), or a TOML/JSON file of them
        (``lean.hw.mapping``); other layers are searched.
    effort : str
        How hard the mapper looks: ``"quick"``, ``"default"`` or ``"thorough"`` (``lean.hw.mapper.EFFORTS``).

    Returns
    -------
    dict
        ``Prediction.to_dict()`` (``workload, accelerator, layers, total, energy_unit``) plus
        ``accelerator_parameters``: the accelerator used, as ``Accelerator.to_dict()``, ``area_mm2`` and
        ``leakage_mw`` by component (``Accelerator.area_mm2``, ``leakage_mw``: None where no table gives it), and
        ``batch``.
    """
    wl = _workload.load(workload, batch=batch)
    acc = accel if isinstance(accel, Accelerator) else accelerator.load(accel)
    values = parse_overrides(overrides)
    if dataflow:
        values["dataflow"] = dataflow
    if values:
        acc = acc.with_overrides(**values)
    fixed = load_mappings(mappings) if mappings is not None else None
    result = predictor.predict(wl, acc, objective, fixed, effort).to_dict()
    result["accelerator_parameters"] = acc.to_dict()
    result["area_mm2"] = acc.area_mm2()
    result["leakage_mw"] = acc.leakage_mw()
    result["batch"] = wl.layers[0].n if wl.layers else 1
    return result


__all__ = ["BUILTIN", "OBJECTIVES", "Accelerator", "LayerShape", "Workload", "accelerator", "accelerator_catalog",
           "from_checkpoint", "from_file", "from_model", "load", "load_mappings", "parse_overrides", "predict",
           "predictor", "tech", "workload_catalog"]
