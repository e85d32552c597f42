"""How a layer maps onto ReRAM crossbars, and what that mapping asks of each component.

A conv layer (per group) is the matrix product of its im2col view: ``C x R x S`` rows (one per weight of a
filter) against ``K`` columns (one per filter), applied to ``N x P x Q`` input vectors. On crossbars of
``xbar x xbar`` cells (``crossbar_mapping``):

- a weight of ``weight_bits`` takes ``ceil(magnitude bits / cell_bits)`` cells along a row; signed weights are a
  differential pair (positive and negative columns: magnitude ``weight_bits - 1``) or an offset (one column,
  magnitude ``weight_bits``, the offset removed digitally);
- the rows are cut into ``ceil(rows / xbar)`` crossbar rows, the columns into ``ceil(cells per row / xbar)``;
  ``replicas`` copies of the whole set process different input vectors at once (for throughput);
- an input vector is applied ``dac_bits`` at a time: ``ceil(input_bits / dac_bits)`` slices, each one crossbar
  read (every row driven by a DAC, every used column converted by an ADC, then shifted and added).

So, per layer: crossbar reads = vectors x slices x crossbars; DAC conversions = vectors x slices x (rows driven,
summed over crossbars); ADC conversions and shift-adds = vectors x slices x (columns used, summed over crossbars);
steps (one read time each) = ceil(vectors / replicas) x slices (a copy takes whole vectors, all their slices).
The architecture models (``arch.py``) put energies, times and areas on these counts; the functional model of
what such a read computes is ``lean.kernels.crossbar_matmul``.
"""

from dataclasses import dataclass

from ...errors import HardwareModelError
from ..workload import LayerShape

SIGNED_SCHEMES = ("differential", "offset")


@dataclass(frozen=True)
class CrossbarMapping:
    """One layer on crossbars: the geometry and the counts of one inference pass (all groups)."""

    name: str
    rows: int                 # weight rows (C x R x S per group)
    cols: int                 # filters per group
    cells_per_weight: int     # cells along a row per weight (both polarities for a differential pair)
    row_tiles: int
    col_tiles: int
    crossbars: int            # crossbars holding the layer once (all groups)
    replicas: int
    vectors: int              # input vectors (N x P x Q, per group)
    input_slices: int
    crossbar_reads: int
    dac_conversions: int
    adc_conversions: int
    shift_adds: int
    steps: int                # crossbar read times, replicas working in parallel
    cell_utilization: float   # weight cells over the cells of the crossbars used

    def to_dict(self) -> dict:
        """Every field by name."""
        return dict(self.__dict__)


def _positive(name, value):
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise HardwareModelError(f"{name} must be a positive integer; got {value!r}")
    return value


def crossbar_mapping(layer: LayerShape, *, xbar: int = 128, cell_bits: int = 2, weight_bits: int = 16,
                     input_bits: int = 16, dac_bits: int = 1, signed: str = "offset",
                     replicas: int = 1) -> CrossbarMapping:
    """How ``layer`` maps onto ``xbar x xbar`` crossbars, and the component counts of one pass over its inputs.

    Parameters
    ----------
    layer : LayerShape
        A conv or fc layer (a pooling layer has no weights to store).
    xbar : int
        Rows and columns of a crossbar.
    cell_bits, weight_bits, input_bits, dac_bits : int
        Bits a cell holds, a weight has, an input has, a DAC applies at once.
    signed : str
        ``"offset"`` (ISAAC: one column per weight, the offset removed digitally) or ``"differential"`` (PRIME:
        positive and negative columns).
    replicas : int
        Copies of the layer's crossbars, each taking its share of the input vectors (more copies than vectors
        leave copies idle).

    Returns
    -------
    CrossbarMapping
    """
    if layer.kind == "pool":
        raise HardwareModelError(f"layer {layer.name}: a pooling layer has no weights to map onto crossbars")
    for name, value in (("xbar", xbar), ("cell_bits", cell_bits), ("weight_bits", weight_bits),
                        ("input_bits", input_bits), ("dac_bits", dac_bits), ("replicas", replicas)):
        _positive(name, value)
    if signed not in SIGNED_SCHEMES:
        raise HardwareModelError(f"unknown signed-weight scheme {signed!r}; choose one of: "
                                 f"{', '.join(SIGNED_SCHEMES)}")
    if signed == "differential" and weight_bits < 2:
        raise HardwareModelError("a differential pair needs weight_bits >= 2 (a sign and a magnitude)")
    magnitude = weight_bits - 1 if signed == "differential" else weight_bits
    cells = -(-magnitude // cell_bits) * (2 if signed == "differential" else 1)
    if layer.kind == "fc":
        rows, cols, vectors = layer.c, layer.k, layer.n
    else:
        rows, cols = layer.c_per_group * layer.r * layer.s, layer.k // layer.groups
        vectors = layer.n * layer.p * layer.q
    row_tiles = -(-rows // xbar)
    col_tiles = -(-(cols * cells) // xbar)
    per_group = row_tiles * col_tiles
    crossbars = per_group * layer.groups
    slices = -(-input_bits // dac_bits)
    passes = vectors * slices * layer.groups        # crossbar-set reads over the whole layer
    # rows driven and columns converted, summed over one group's crossbars (the last tiles are partial)
    driven = rows * col_tiles
    converted = cols * cells * row_tiles
    return CrossbarMapping(
        name=layer.name, rows=rows, cols=cols, cells_per_weight=cells, row_tiles=row_tiles, col_tiles=col_tiles,
        crossbars=crossbars * replicas, replicas=replicas, vectors=vectors, input_slices=slices,
        crossbar_reads=passes * per_group, dac_conversions=passes * driven, adc_conversions=passes * converted,
        shift_adds=passes * converted, steps=-(-vectors // replicas) * slices,
        cell_utilization=rows * cols * cells / (per_group * xbar * xbar))


def map_workload(workload, **settings) -> dict:
    """``crossbar_mapping`` of every conv and fc layer of ``workload`` (a ``Workload``) with ``settings``, and the
    totals (crossbars to hold the network at once, conversions and read steps of one pass).

    Returns
    -------
    dict
        ``workload``, ``settings``, ``layers`` (each ``CrossbarMapping.to_dict()``) and ``total``.
    """
    layers = [crossbar_mapping(layer, **settings) for layer in workload.compute_layers()]
    keys = ("crossbars", "crossbar_reads", "dac_conversions", "adc_conversions", "shift_adds", "steps")
    total = {k: sum(getattr(m, k) for m in layers) for k in keys}
    return {"workload": workload.name, "settings": dict(settings), "layers": [m.to_dict() for m in layers],
            "total": total}
