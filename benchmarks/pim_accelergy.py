"""lean's ISAAC and TIMELY component tables against Accelergy's component library (hwcomponents-library).

    python benchmarks/pim_accelergy.py --accelergy-python /path/to/py312-venv/bin/python

hwcomponents-library needs Python >= 3.12 and is no dependency of lean: install it in a separate environment
(``python3.12 -m venv v && v/bin/pip install hwcomponents-library hwcomponents-neurosim``) and name its Python.
The script asks that Python for each component's energy per action and area at its own node, and prints them
next to the entries of ``lean.hw.tech.PIM_COMPONENTS`` (and TIMELY's 2 KB buffer, which lean reads per 8-bit
access from the same table), with the ratio.
"""

import argparse
import json
import subprocess

PROBE = r"""
import json
import hwcomponents_library.library.isaac as I
import hwcomponents_library.library.timely as T
out = {}
def put(name, comp, action, per=1.0):
    out[name] = {"energy_pj": getattr(comp, action)().energy * 1e12 / per, "area_um2": comp.area * 1e12}
put("isaac adc_8b", I.IsaacADC(32e-9), "convert")
put("isaac dac_1b", I.IsaacDAC(32e-9), "read")
put("isaac edram_256b", I.IsaacEDRAM(32e-9, width=256, depth=2048), "read")
put("isaac edram_bus_bit", I.IsaacEDRAMBus(32e-9), "read")
put("isaac router_256b", I.IsaacRouterSharedByFour(32e-9), "read")
put("isaac shift_add", I.IsaacShiftAdd(32e-9), "read")
put("timely dtc_8b", T.TimelyDTC(65e-9), "convert")
put("timely tdc_8b", T.TimelyTDC(65e-9), "convert")
put("timely x_subbuf", T.TimelyXSubBuf(65e-9), "read")
put("timely p_subbuf", T.TimelyPSubBuf(65e-9), "read")
put("timely i_adder", T.TimelyIAdder(65e-9), "read")
put("timely charging_comparator", T.TimelyChargingComparator(65e-9), "read")
put("timely buffer read (per 8 bits)", T.TimelyInputOutputBuffer(65e-9, width=128, depth=128), "read", per=16)
put("timely buffer write (per 8 bits)", T.TimelyInputOutputBuffer(65e-9, width=128, depth=128), "write", per=16)
print(json.dumps(out))
"""


def lean_table():
    from lean.hw import tech

    i, t, t2 = (tech.PIM_COMPONENTS[k] for k in ("isaac", "timely", "timely-table2"))
    return {
        "isaac adc_8b": (i["adc_8b_pj"].value, i["adc_8b_um2"].value),
        "isaac dac_1b": (i["dac_1b_pj"].value, i["dac_1b_um2"].value),
        "isaac edram_256b": (i["edram_256b_pj"].value, i["edram_64kB_um2"].value),
        "isaac edram_bus_bit": (i["edram_bus_bit_pj"].value, None),
        "isaac router_256b": (i["router_256b_pj"].value, i["router_share_um2"].value),
        "isaac shift_add": (i["shift_add_pj"].value, i["shift_add_um2"].value),
        "timely dtc_8b": (t["dtc_8b_fj"].value / 1e3, t["dtc_8b_um2"].value),
        "timely tdc_8b": (t["tdc_8b_fj"].value / 1e3, t["tdc_8b_um2"].value),
        "timely x_subbuf": (t["x_subbuf_fj"].value / 1e3, t["x_subbuf_um2"].value),
        "timely p_subbuf": (t["p_subbuf_fj"].value / 1e3, t["p_subbuf_um2"].value),
        "timely i_adder": (t["i_adder_fj"].value / 1e3, None),
        "timely charging_comparator": (t["charging_comparator_fj"].value / 1e3, t["charging_comparator_um2"].value),
        "timely buffer read (per 8 bits)": (t2["input_buffer_fj"].value / 1e3, None),
        "timely buffer write (per 8 bits)": (t2["output_buffer_fj"].value / 1e3, None),
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--accelergy-python", required=True, help="a Python >= 3.12 with hwcomponents-library")
    args = ap.parse_args()
    probe = subprocess.run([args.accelergy_python, "-c", PROBE], capture_output=True, text=True, check=True)
    theirs = json.loads(probe.stdout.strip().splitlines()[-1])
    ours = lean_table()
    print(f"{'component':<34} {'lean pJ':>10} {'Accelergy pJ':>12} {'ratio':>7} {'lean um2':>10} {'Accelergy um2':>13}")
    worst = 0.0
    for name, (energy, area) in ours.items():
        a = theirs[name]
        ratio = energy / a["energy_pj"]
        worst = max(worst, abs(ratio - 1))
        area_s = f"{area:>10.4g}" if area is not None else f"{'-':>10}"
        print(f"{name:<34} {energy:>10.4g} {a['energy_pj']:>12.4g} {ratio:>7.4f} {area_s} {a['area_um2']:>13.4g}")
    print(f"largest energy difference: {100 * worst:.3f}%")


if __name__ == "__main__":
    main()
