"""Processing in memory: ReRAM crossbar accelerators for inference and SOT-MRAM / FloatPIM digital PIM for training.

- ``mapping.py``: how a conv or fc layer maps onto crossbars (bit-sliced weights, signed schemes, input slices,
  replication) and the counts of every component one pass asks for.
- ``arch.py``: PRIME, ISAAC and TIMELY as energy, latency and area models on those counts, with TIMELY's three
  ideas (analog local buffers, time-domain interfaces, only-once input read) switchable one at a time.
- ``training.py``: a training step in floating point inside memory on FloatPIM (NOR-based ReRAM) and on the
  SOT-MRAM digital PIM (complementary 2T-2MTJ cells, in-array full adder), from their step counts.
- ``simulate.py``: a trained lean model's inference through the functional crossbar
  (``lean.kernels.crossbar_matmul``), its accuracy next to the digital model's: the one place ``hw`` runs a model.

Component energies and areas are in ``lean.hw.tech`` (``PIM_COMPONENTS``), each with its source.
"""

from .mapping import SIGNED_SCHEMES, CrossbarMapping, crossbar_mapping, map_workload
from .simulate import parse_sweep, simulate, sweep

__all__ = ["SIGNED_SCHEMES", "CrossbarMapping", "crossbar_mapping", "map_workload", "parse_sweep", "simulate", "sweep"]
