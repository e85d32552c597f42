"""Hardware cost models: workloads, technology tables, dataflow predictor.

The hardware rooms read models only through ``lean.hw.workload``.
"""

from .workload import BUILTIN, LayerShape, Workload, from_checkpoint, from_file, from_model, load

__all__ = ["BUILTIN", "LayerShape", "Workload", "from_checkpoint", "from_file", "from_model", "load"]
