"""Technology tables: every entry has a unit and a source; bit-width scaling rules."""

import pytest

from lean.errors import HardwareModelError
from lean.hw import tech


def test_every_entry_has_unit_and_source():
    for name, table in tech.TABLES.items():
        for key, cost in table.items():
            assert cost.value > 0 and cost.unit and cost.source, (name, key)


def test_eyeriss_normalized_ratios():
    e = tech.unit_energies_pj("eyeriss-normalized", 16)
    assert (e["mac"], e["rf"], e["noc"], e["glb"], e["dram"]) == (1, 1, 2, 6, 200)
    e8 = tech.unit_energies_pj("eyeriss-normalized", 8)
    assert e8["mac"] == pytest.approx(0.25) and e8["glb"] == pytest.approx(3.0)  # bits^2 and bits


def test_bit_width_scaling_rules():
    assert tech.mult_energy_pj(8) == pytest.approx(0.2)              # Horowitz: 8-bit multiply 0.2 pJ
    assert tech.mult_energy_pj(32) == pytest.approx(0.2 * 16)        # quadratic: 3.2 vs the table's 3.1
    assert tech.add_energy_pj(32) == pytest.approx(0.1)
    assert tech.dram_energy_pj(16) == pytest.approx(320.0)
    assert tech.mac_energy_pj(8) == pytest.approx(0.2 + 0.05)
    assert tech.TABLES["65nm"]["mult_8b"].value == pytest.approx(0.2 * (65 / 45) ** 2)
    with pytest.raises(HardwareModelError, match="unknown technology table"):
        tech.table("7nm")


def test_energy_unit_of_each_table():
    assert tech.energy_unit("eyeriss-normalized") == "x 16-bit MAC"
    assert tech.energy_unit("horowitz45") == tech.energy_unit("65nm") == "pJ"
    with pytest.raises(HardwareModelError, match="unknown technology table"):
        tech.energy_unit("7nm")


def test_area_and_leakage_tables_are_their_sources():
    for node, entries in tech.AREA.items():
        for key, cost in entries.items():
            assert cost.value > 0 and cost.unit and cost.source, (node, key)
    # Chen's Eyeriss analysis code (ISCA 2016 Fig. 7a): 12.70 um2/B at 4 kB and above, 20,000 um2 of PE logic
    assert tech.STORAGE_AREA_65NM[-1] == (4096, 12.70) and tech.AREA["65nm"]["pe_logic_um2"].value == 20000
    assert tech.storage_area_um2("65nm", 1 << 20) == pytest.approx(12.70 * (1 << 20))
    assert tech.storage_area_um2("65nm", 384) == pytest.approx(384 * (27.48 + 20.87) / 2)   # halfway 256..512
    assert tech.storage_area_um2("65nm", 0) == 0.0
    # CACTI at 45 nm: a 128 kB SRAM is 429,589 um2 (3356 um2/kB); Aladdin: 32-bit adder 278, multiplier 6350 um2
    assert tech.storage_area_um2("45nm", 131072) == pytest.approx(3356.0 * 128)
    assert tech.mac_area_um2("45nm", 16) == pytest.approx(6350 / 4 + 278)            # bits^2 and bits
    assert tech.mac_area_um2("45nm", 8) == pytest.approx(6350 / 16 + 278 / 2)


def test_accelerator_area_and_leakage():
    from lean.hw.accelerator import eyeriss, tpu_like

    area = eyeriss().area_mm2()
    # 168 PEs x 20,000 um2 of logic, their 448 + 24 + 48 byte scratchpads, the 108 kB buffer; the chip's core is
    # 12.25 mm2 (JSSC 2017), of which the network, control and clock (not in the tables) take about a quarter
    assert area["pe_logic"] == pytest.approx(168 * 0.02)
    assert area["glb"] == pytest.approx(110592 * 12.70 / 1e6)
    assert 0.5 * 12.25 < area["total"] < 12.25
    assert eyeriss().leakage_mw() is None                   # no source gives Eyeriss's leakage
    leak = tpu_like().leakage_mw()
    assert leak["total"] == pytest.approx(leak["mac"] + leak["rf"] + leak["glb"]) and leak["mac"] > 0
    bigger = tpu_like().with_overrides(glb_bytes=str(2 * tpu_like().glb_bytes))
    assert bigger.area_mm2()["glb"] == pytest.approx(2 * tpu_like().area_mm2()["glb"])


def test_pim_component_tables_reproduce_their_sources():
    for arch, entries in tech.PIM_COMPONENTS.items():
        for key, cost in entries.items():
            assert cost.value > 0 and cost.unit and cost.source, (arch, key)
    isaac = tech.PIM_COMPONENTS["isaac"]
    # the derivations Accelergy's files give from ISAAC's Table I (powers per IMA at its converters' rates)
    assert isaac["adc_8b_pj"].value == pytest.approx(16e-3 / (1.2e9 * 8) * 1e12)          # 8 ADCs, 16 mW
    assert isaac["dac_1b_pj"].value == pytest.approx(4e-3 / (128 * 8 * 1e7 * 1.2) * 1e12 * 128 / 100, rel=1e-4)
    assert isaac["edram_256b_pj"].value == pytest.approx(
        (20.7e-3 / 12) * (16384 / ((128 * 8 * 1e7 * 1.2) * 100 / 128)) / ((16384 + 2048) * 2 / 256) * 1e12, rel=1e-3)
    assert isaac["adc_8b_um2"].value == 9600 / 8 and isaac["router_share_um2"].value == 150000 / 4
    timely = tech.PIM_COMPONENTS["timely"]
    assert (timely["dtc_8b_fj"].value, timely["tdc_8b_fj"].value, timely["i_adder_fj"].value) == (37.5, 145.0, 36.8)
    # ISAAC's Table I rows add up to its printed totals: a tile 330 mW and 0.372 mm2 (12 IMAs and the tile's own
    # rows), the chip 65.8 W and 85.4 mm2 (168 tiles and the HyperTransport links)
    t1 = tech.PIM_COMPONENTS["isaac-table1"]
    for unit, tile_total, chip_total in (("mw", 330.0, 65800.0), ("mm2", 0.372, 85.4)):
        ima = sum(c.value for k, c in t1.items() if k.startswith("ima_") and k.endswith(unit))
        tile = 12 * ima + sum(c.value for k, c in t1.items() if k.startswith("tile_") and k.endswith(unit))
        assert tile == pytest.approx(tile_total, rel=0.01), unit
        assert 168 * tile + t1[f"chip_hypertransport_{unit}"].value == pytest.approx(chip_total, rel=0.01), unit
