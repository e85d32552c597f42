"""Technology tables: energy per action, and area and leakage per component, each entry with its unit and source.

Three sets:

- ``eyeriss-normalized``: the normalized access energies of the Eyeriss analysis (Chen et al., ISCA 2016,
  Fig. 1; used by DNN-Chip Predictor): MAC 1, RF 1, NoC (inter-PE / array) 2, global buffer 6, DRAM 200, all
  relative to one 16-bit MAC. ``mac_pj`` scales them to pJ (1 pJ per 16-bit MAC by default: a round number of the
  order of 65 nm 16-bit fixed-point MACs; set it to compare absolute figures).
- ``horowitz45``: Horowitz, "Computing's energy problem", ISSCC 2014, 45 nm, pJ per operation or 32-bit access.
- ``65nm``: the Horowitz 45 nm figures scaled to 65 nm by (65/45)^2 for logic and SRAM (capacitance ~ feature
  size, voltage ~ flat between these nodes; a first-order rule), DRAM access kept (interface-dominated).

Bit-width scaling (documented first-order rules): a multiplier's energy grows with bits^2, an adder's and a memory
access's with bits. ``mac_energy_pj(bits)`` = multiplier(bits) + adder(accumulator bits = 2 * bits).

Energies taken from ``eyeriss-normalized`` stay in its unit, multiples of one 16-bit MAC (``energy_unit``), though
the functions and fields that carry them end in ``_pj``; the other tables are in pJ.
"""

from dataclasses import dataclass

import numpy as np

from ..errors import HardwareModelError


@dataclass(frozen=True)
class Cost:
    """One table entry: the energy of an action, its unit and where the figure comes from."""

    value: float
    unit: str
    source: str


EYERISS = "Chen, Emer, Sze, Eyeriss, ISCA 2016, Fig. 1 (normalized to a 16-bit MAC)"
HOROWITZ = "Horowitz, Computing's energy problem, ISSCC 2014 (45 nm)"

TABLES = {
    "eyeriss-normalized": {
        "mac_16b": Cost(1.0, "x 16-bit MAC", EYERISS),
        "rf_16b": Cost(1.0, "x 16-bit MAC", EYERISS),
        "noc_16b": Cost(2.0, "x 16-bit MAC", EYERISS),
        "glb_16b": Cost(6.0, "x 16-bit MAC", EYERISS),
        "dram_16b": Cost(200.0, "x 16-bit MAC", EYERISS),
    },
    "horowitz45": {
        "add_8b": Cost(0.03, "pJ", HOROWITZ),
        "add_32b": Cost(0.1, "pJ", HOROWITZ),
        "fp_add_16b": Cost(0.4, "pJ", HOROWITZ),
        "fp_add_32b": Cost(0.9, "pJ", HOROWITZ),
        "mult_8b": Cost(0.2, "pJ", HOROWITZ),
        "mult_32b": Cost(3.1, "pJ", HOROWITZ),
        "fp_mult_16b": Cost(1.1, "pJ", HOROWITZ),
        "fp_mult_32b": Cost(3.7, "pJ", HOROWITZ),
        "sram_8kb_read_32b": Cost(5.0, "pJ", HOROWITZ),
        "dram_read_32b": Cost(640.0, "pJ", HOROWITZ),
    },
}
_SCALE_65 = (65.0 / 45.0) ** 2
TABLES["65nm"] = {
    key: Cost(c.value * (1.0 if key.startswith("dram") else _SCALE_65), "pJ",
              f"{HOROWITZ}, scaled to 65 nm by (65/45)^2" + ("" if not key.startswith("dram") else " (DRAM kept)"))
    for key, c in TABLES["horowitz45"].items()
}


# ------------------------------------------------------------------------------------------ area, leakage

CHEN_CODE = ("Chen's analysis code for Eyeriss (ISCA 2016), helpers/get_storage_area_from_size.m and get_pe_area.m "
             "(the ratios are the paper's Fig. 7a, normalized area per byte); 65 nm")
ALADDIN = ("Aladdin synthesis tables as Accelergy's aladdin plug-in carries them (data/*.csv, 1 ns rows, 40 nm, used "
           "for 45 nm without scaling)")
CACTI45 = ("CACTI 45 nm estimates in the Timeloop/Accelergy exercises' reference outputs "
           "(timeloop-accelergy-exercises, example_designs/*/ref_outputs/*.accelergy.log)")
# storage area per byte by capacity (bytes -> um2/B), interpolated linearly between points, flat above the last
STORAGE_AREA_65NM = ((2, 103.47), (4, 172.07), (8, 177.07), (16, 169.89), (32, 96.06), (64, 59.15), (128, 39.94),
                     (256, 27.48), (512, 20.87), (1024, 16.14), (2048, 13.89), (4096, 12.70))
STORAGE_AREA_45NM = ((64, 3788.0 / 1024), (384, 3547.0 / 1024), (2048, 3610.0 / 1024), (16384, 3126.0 / 1024),
                     (65536, 3266.0 / 1024), (131072, 3356.0 / 1024))

AREA = {
    "65nm": {
        "storage_um2_per_byte": Cost(12.70, "um2/B (>= 4 kB; smaller arrays by STORAGE_AREA_65NM)", CHEN_CODE),
        "pe_logic_um2": Cost(20000.0, "um2 per PE (multiplier, adder, control; storage apart)", CHEN_CODE),
    },
    "45nm": {
        "storage_um2_per_byte": Cost(3356.0 / 1024, "um2/B (a 128 kB SRAM; others by STORAGE_AREA_45NM)", CACTI45),
        "register_um2_per_bit": Cost(5.98, "um2/bit", ALADDIN),
        "adder_32b_um2": Cost(278.0, "um2", ALADDIN),
        "mult_32b_um2": Cost(6350.0, "um2", ALADDIN),
        "adder_32b_leak_mw": Cost(0.0023, "mW", ALADDIN),
        "mult_32b_leak_mw": Cost(0.08, "mW", ALADDIN),
        "register_leak_mw_per_bit": Cost(7e-5, "mW/bit", ALADDIN),
        "sram_128kB_leak_mw": Cost(3.34e-3, "mW (CACTI's low-leakage setting in that run; likely an underestimate)",
                                   CACTI45),
    },
}
# Processing-in-memory components (issue 17): energy per action and area, as Accelergy's component library
# transcribes them from the papers, with the derivation each file gives. Leakage is 0 in every entry there.
ACCELERGY_ISAAC = ("Accelergy-Project/accelergy-library-plug-in @ ba4e9da, library/isaac/{}.csv (also "
                   "hwcomponents-library @ 8b56f7e, isaac.py), derived from Shafiee et al., ISAAC, ISCA 2016 "
                   "(corrected Oct. 2016), Table I; 32 nm")
ACCELERGY_TIMELY = ("Accelergy-Project/accelergy-library-plug-in @ ba4e9da, library/timely/{}.csv (also "
                    "hwcomponents-library @ 8b56f7e, timely.py): 'numbers from paper table II' of Li et al., "
                    "TIMELY, ISCA 2020; 65 nm")
ISAAC_TABLE1 = ("Shafiee et al., ISAAC, ISCA 2016 (corrected Oct. 2016), Table I, as transcribed in "
                "dyigitpolat/mimarsinan @ 5c65ecb, docs/research/physics/isaac_constants_research.md (the same powers "
                "and areas as the derivations in Accelergy's isaac files); 32 nm; power and area of all instances")
TIMELY_TABLE2 = ("Li et al., TIMELY, ISCA 2020, Table II, as the project's METHODS.md transcribes it; 65 nm")
PIM_COMPONENTS = {
    # ISAAC's Table I rows: power (mW) and area (mm2) of all instances in one IMA, one tile or the chip
    "isaac-table1": {
        "ima_adc_mw": Cost(16.0, "mW (8 ADCs, 8-bit, 1.2 GS/s)", ISAAC_TABLE1),
        "ima_adc_mm2": Cost(0.0096, "mm2 (8 ADCs, 8-bit, 1.2 GS/s)", ISAAC_TABLE1),
        "ima_dac_mw": Cost(4.0, "mW (8 x 128 1-bit DACs)", ISAAC_TABLE1),
        "ima_dac_mm2": Cost(0.00017, "mm2 (8 x 128 1-bit DACs)", ISAAC_TABLE1),
        "ima_sample_hold_mw": Cost(0.01, "mW (8 x 128)", ISAAC_TABLE1),
        "ima_sample_hold_mm2": Cost(0.00004, "mm2 (8 x 128)", ISAAC_TABLE1),
        "ima_crossbars_mw": Cost(2.4, "mW (8 crossbars, 128 x 128, 2-bit cells)", ISAAC_TABLE1),
        "ima_crossbars_mm2": Cost(0.0002, "mm2 (8 crossbars, 128 x 128, 2-bit cells)", ISAAC_TABLE1),
        "ima_shift_add_mw": Cost(0.2, "mW (4 units)", ISAAC_TABLE1),
        "ima_shift_add_mm2": Cost(0.00024, "mm2 (4 units)", ISAAC_TABLE1),
        "ima_input_register_mw": Cost(1.24, "mW (2 KB)", ISAAC_TABLE1),
        "ima_input_register_mm2": Cost(0.0021, "mm2 (2 KB)", ISAAC_TABLE1),
        "ima_output_register_mw": Cost(0.23, "mW (256 B)", ISAAC_TABLE1),
        "ima_output_register_mm2": Cost(0.00077, "mm2 (256 B)", ISAAC_TABLE1),
        "tile_edram_mw": Cost(20.7, "mW (64 KB, 2 banks, 256-bit bus)", ISAAC_TABLE1),
        "tile_edram_mm2": Cost(0.083, "mm2 (64 KB, 2 banks, 256-bit bus)", ISAAC_TABLE1),
        "tile_bus_mw": Cost(7.0, "mW (eDRAM-to-IMA bus, 384 wires)", ISAAC_TABLE1),
        "tile_bus_mm2": Cost(0.090, "mm2 (eDRAM-to-IMA bus, 384 wires)", ISAAC_TABLE1),
        "tile_router_mw": Cost(42.0 / 4, "mW (a quarter of a router shared by four tiles)", ISAAC_TABLE1),
        "tile_router_mm2": Cost(0.151 / 4, "mm2 (a quarter of a router shared by four tiles)", ISAAC_TABLE1),
        "tile_sigmoid_mw": Cost(0.52, "mW (2 units)", ISAAC_TABLE1),
        "tile_sigmoid_mm2": Cost(0.0006, "mm2 (2 units)", ISAAC_TABLE1),
        "tile_shift_add_mw": Cost(0.05, "mW (1 unit)", ISAAC_TABLE1),
        "tile_shift_add_mm2": Cost(0.00006, "mm2 (1 unit)", ISAAC_TABLE1),
        "tile_maxpool_mw": Cost(0.4, "mW (1 unit)", ISAAC_TABLE1),
        "tile_maxpool_mm2": Cost(0.00024, "mm2 (1 unit)", ISAAC_TABLE1),
        "tile_output_register_mw": Cost(1.68, "mW (3 KB)", ISAAC_TABLE1),
        "tile_output_register_mm2": Cost(0.0032, "mm2 (3 KB)", ISAAC_TABLE1),
        "chip_hypertransport_mw": Cost(10400.0, "mW (4 links, 1.6 GHz; a constant overhead)", ISAAC_TABLE1),
        "chip_hypertransport_mm2": Cost(22.88, "mm2 (4 links, 1.6 GHz; a constant overhead)", ISAAC_TABLE1),
    },
    "timely-table2": {
        "crossbar_read_fj": Cost(1792.0, "fJ per 256 x 256 crossbar read", TIMELY_TABLE2),
        "relu_fj": Cost(205.0, "fJ per output", TIMELY_TABLE2),
        "relu_um2": Cost(300.0, "um2", TIMELY_TABLE2),
        "maxpool_fj": Cost(330.0, "fJ per pooled output", TIMELY_TABLE2),
        "maxpool_um2": Cost(240.0, "um2", TIMELY_TABLE2),
        "input_buffer_fj": Cost(12736.0, "fJ per 8-bit read of the 2 KB input buffer (Accelergy's reading: "
                                "timely_input_output_buffer.csv charges 16 x this per 128-bit read)", TIMELY_TABLE2),
        "output_buffer_fj": Cost(31039.0, "fJ per 8-bit write of the 2 KB output buffer (Accelergy's reading, as "
                                 "above, per 128-bit write)", TIMELY_TABLE2),
    },
    "isaac": {
        "edram_256b_pj": Cost(20.45, "pJ per 256-bit access", ACCELERGY_ISAAC.format("isaac_eDRAM")),
        "edram_64kB_um2": Cost(83000.0, "um2", ACCELERGY_ISAAC.format("isaac_eDRAM")),
        "edram_bus_bit_pj": Cost(0.054, "pJ per bit", ACCELERGY_ISAAC.format("isaac_eDRAM_bus")),
        "router_256b_pj": Cost(20.74, "pJ per 256 bits", ACCELERGY_ISAAC.format("isaac_router")),
        "router_share_um2": Cost(37500.0, "um2 (a router shared by four tiles, a quarter each)",
                                 ACCELERGY_ISAAC.format("isaac_router_shared_by_four")),
        "adc_8b_pj": Cost(1.666666667, "pJ per conversion", ACCELERGY_ISAAC.format("isaac_adc")),
        "adc_8b_um2": Cost(1200.0, "um2", ACCELERGY_ISAAC.format("isaac_adc")),
        "dac_1b_pj": Cost(0.41667, "pJ per conversion", ACCELERGY_ISAAC.format("isaac_dac")),
        "dac_1b_um2": Cost(0.166015625, "um2", ACCELERGY_ISAAC.format("isaac_dac")),
        "shift_add_pj": Cost(0.021, "pJ per operation", ACCELERGY_ISAAC.format("isaac_shift_add")),
        "shift_add_um2": Cost(60.0, "um2", ACCELERGY_ISAAC.format("isaac_shift_add")),
    },
    "timely": {
        "dtc_8b_fj": Cost(37.5, "fJ per conversion", ACCELERGY_TIMELY.format("timely_dtc")),
        "dtc_8b_um2": Cost(240.0, "um2", ACCELERGY_TIMELY.format("timely_dtc")),
        "tdc_8b_fj": Cost(145.0, "fJ per conversion", ACCELERGY_TIMELY.format("timely_tdc")
                          + " (this file is not marked 'table II')"),
        "tdc_8b_um2": Cost(310.0, "um2", ACCELERGY_TIMELY.format("timely_tdc")),
        "x_subbuf_fj": Cost(0.62, "fJ per row", ACCELERGY_TIMELY.format("timely_xsubBuf")),
        "x_subbuf_um2": Cost(5.0, "um2 per row", ACCELERGY_TIMELY.format("timely_xsubBuf")),
        "p_subbuf_fj": Cost(2.3, "fJ per use", ACCELERGY_TIMELY.format("timely_psubBuf")),
        "p_subbuf_um2": Cost(5.0, "um2", ACCELERGY_TIMELY.format("timely_psubBuf")),
        "i_adder_fj": Cost(36.8, "fJ per add", ACCELERGY_TIMELY.format("timely_iadder")),
        "charging_comparator_fj": Cost(41.7, "fJ per comparison", ACCELERGY_TIMELY.format(
            "timely_charging_comparator")),
        "charging_comparator_um2": Cost(40.0, "um2", ACCELERGY_TIMELY.format("timely_charging_comparator")),
        "crossbar_256_um2": Cost(100.0, "um2 per 256 x 256 crossbar",
                                 "Accelergy-Project/accelergy-library-plug-in @ ba4e9da, library/timely/timely.cell "
                                 "(the PRIME cell), its comment: from Li et al., TIMELY, ISCA 2020; 65 nm"),
    },
}

# the node of each energy table's area and leakage (eyeriss-normalized is Eyeriss's 65 nm process)
AREA_NODE = {"eyeriss-normalized": "65nm", "65nm": "65nm", "horowitz45": "45nm"}


def storage_area_um2(node: str, capacity_bytes: float) -> float:
    """Area of a storage array of ``capacity_bytes`` at ``node`` (``"65nm"`` or ``"45nm"``), per-byte area
    interpolated by capacity (small arrays cost more per byte: flip-flops and periphery).

    Parameters
    ----------
    node : str
        A key of ``AREA``.
    capacity_bytes : float
        Bytes held.

    Returns
    -------
    float
        um2 (0 for an empty array).
    """
    if capacity_bytes <= 0:
        return 0.0
    points = STORAGE_AREA_65NM if node == "65nm" else STORAGE_AREA_45NM
    sizes = [p[0] for p in points]
    per_byte = [p[1] for p in points]
    return float(np.interp(capacity_bytes, sizes, per_byte) * capacity_bytes)


def mac_area_um2(node: str, bits: int) -> float:
    """One MAC datapath at ``bits``: at 45 nm Aladdin's multiplier (area ~ bits^2) and a 2*bits adder (~ bits); at
    65 nm part of Chen's per-PE logic (``pe_logic_um2``), so 0 here.

    Parameters
    ----------
    node : str
        ``"65nm"`` or ``"45nm"``.
    bits : int
        Operand width.

    Returns
    -------
    float
        um2.
    """
    if node == "65nm":
        return 0.0
    a = AREA["45nm"]
    return a["mult_32b_um2"].value * (bits / 32.0) ** 2 + a["adder_32b_um2"].value * (2 * bits) / 32.0


def table(name: str) -> dict[str, Cost]:
    """The technology table called ``name`` (a key of ``TABLES``).

    Parameters
    ----------
    name : str
        ``"eyeriss-normalized"``, ``"horowitz45"`` or ``"65nm"``.

    Returns
    -------
    dict of str to Cost
        Action name (``"mult_8b"``, ``"dram_16b"``, ...) -> its cost with unit and source.
    """
    if name not in TABLES:
        raise HardwareModelError(f"unknown technology table {name!r}; known: {', '.join(TABLES)}")
    return TABLES[name]


def energy_unit(name: str) -> str:
    """The unit of the energies a table gives: ``"pJ"``, or ``"x 16-bit MAC"`` for ``eyeriss-normalized``.

    Parameters
    ----------
    name : str
        A technology table name.

    Returns
    -------
    str
        The one unit all the table's entries share.
    """
    units = {cost.unit for cost in table(name).values()}
    if len(units) != 1:  # a table mixing units would make every sum over it meaningless
        raise ValueError(f"technology table {name!r} mixes units: {sorted(units)}")
    return units.pop()


def mult_energy_pj(bits: int, tech: str = "horowitz45") -> float:
    """Integer multiplier energy at ``bits``, scaled from the 8-bit entry by bits^2.

    Parameters
    ----------
    bits : int
        Operand width.
    tech : str
        A pJ technology table (``horowitz45`` or ``65nm``).

    Returns
    -------
    float
        Energy of one multiply (pJ).
    """
    return table(tech)["mult_8b"].value * (bits / 8.0) ** 2


def add_energy_pj(bits: int, tech: str = "horowitz45") -> float:
    """Integer adder energy at ``bits``, scaled linearly from the 32-bit entry.

    Parameters
    ----------
    bits : int
        Operand width.
    tech : str
        A pJ technology table.

    Returns
    -------
    float
        Energy of one add (pJ).
    """
    return table(tech)["add_32b"].value * bits / 32.0


def mac_energy_pj(bits: int, tech: str = "horowitz45") -> float:
    """One multiply-accumulate: a ``bits`` x ``bits`` multiply and a 2*bits accumulate.

    Parameters
    ----------
    bits : int
        Operand width.
    tech : str
        A pJ technology table.

    Returns
    -------
    float
        Energy of one MAC (pJ).
    """
    return mult_energy_pj(bits, tech) + add_energy_pj(2 * bits, tech)


def sram_energy_pj(bits: int, tech: str = "horowitz45") -> float:
    """A ``bits``-wide read from a small (8 kB) SRAM, scaled linearly from the 32-bit entry.

    Parameters
    ----------
    bits : int
        Access width.
    tech : str
        A pJ technology table.

    Returns
    -------
    float
        Energy of one read (pJ).
    """
    return table(tech)["sram_8kb_read_32b"].value * bits / 32.0


def dram_energy_pj(bits: int, tech: str = "horowitz45") -> float:
    """A ``bits``-wide DRAM read, scaled linearly from the 32-bit entry.

    Parameters
    ----------
    bits : int
        Access width.
    tech : str
        A pJ technology table.

    Returns
    -------
    float
        Energy of one read (pJ).
    """
    return table(tech)["dram_read_32b"].value * bits / 32.0


def unit_energies_pj(tech: str, word_bits: int = 16, mac_pj: float = 1.0) -> dict[str, float]:
    """Per-action energies for one ``word_bits`` word at each level, from a table.

    For ``eyeriss-normalized`` the normalized costs times ``mac_pj``, scaled to ``word_bits`` (memory linear, MAC
    quadratic in bits); for the pJ tables: MAC from the multiplier and adder rules, RF and NoC as a small-SRAM
    access (RF = 1/6 of it, NoC = 1/3, keeping Eyeriss's ratios RF:NoC:buffer = 1:2:6), global buffer as the 8 kB
    SRAM read, DRAM as the DRAM read.

    Parameters
    ----------
    tech : str
        A technology table name.
    word_bits : int
        Width of one word (and of the MAC operands).
    mac_pj : float
        ``eyeriss-normalized`` only: what one 16-bit MAC costs (1.0 keeps the normalized unit).

    Returns
    -------
    dict of str to float
        Keys ``mac, rf, noc, glb, dram``, in the table's unit (``energy_unit(tech)``).
    """
    t = table(tech)
    if tech == "eyeriss-normalized":
        mem = word_bits / 16.0
        return {"mac": t["mac_16b"].value * mac_pj * mem ** 2, "rf": t["rf_16b"].value * mac_pj * mem,
                "noc": t["noc_16b"].value * mac_pj * mem, "glb": t["glb_16b"].value * mac_pj * mem,
                "dram": t["dram_16b"].value * mac_pj * mem}
    glb = sram_energy_pj(word_bits, tech)
    return {"mac": mac_energy_pj(word_bits, tech), "rf": glb / 6.0, "noc": glb / 3.0, "glb": glb,
            "dram": dram_energy_pj(word_bits, tech)}
