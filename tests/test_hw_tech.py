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
