"""PRIME, ISAAC and TIMELY from lean's model against the figures their papers quote (issue 17 targets).

    python benchmarks/pim_archs.py [--json]

Prints, side by side with the papers' figures (TIMELY, ISCA 2020, as the project's METHODS.md and a full-text
note transcribe them; ISAAC's corrected Table I and IV as transcribed in dyigitpolat/mimarsinan):

1. ISAAC's peak computational density (GOPs/s/mm2) and power efficiency (GOPs/W) against Table IV's ISAAC-CE row,
   and its chip power and area against Table I's totals;
2. TIMELY against PRIME at 8 bits: peak TOPs/W of each (21.0 vs 2.10) and their ratio (10x); the ratio on each
   built-in workload and its geometric mean (the paper's mean over its benchmarks: 10x); peak density ratio (the
   paper: up to 31.2x) and VGG-16 throughput ratio (the paper: up to 736.6x); TIMELY at 16 bits against ISAAC
   (6.90 vs 0.38 TOPs/W: 18.2x);
3. TIMELY's ablation on each workload: what ALB, TDI and O2IR each save alone and ALB + O2IR's share of the
   whole saving (the paper: 99%);
4. energy splits: PRIME's on VGG-16 (inputs 36%, partial sums and outputs 47%, the rest 17%) and ISAAC's on
   ResNet-18 (analog compute with DAC/ADC 61%, communication 19%, memory 12%, digital 8%).
Everything is analytical (no timing), so one run prints it all; the figures go to
benchmarks/results/pim_archs.json.
"""

import argparse
import math
from pathlib import Path

from _runs import write_figures

RESULTS = Path(__file__).parent / "results" / "pim_archs.json"
WORKLOADS = ("alexnet", "vgg16", "resnet18", "resnet50", "mobilenetv2")


def isaac_split(arch, result):
    """ISAAC's energy in TIMELY's four groups: analog compute with the converters, communication (bus, router,
    HyperTransport), memory (eDRAM, input and output registers), digital (shift-add, sigmoid, pooling, S+A)."""
    from lean.hw import tech

    bus = tech.PIM_COMPONENTS["isaac"]["edram_bus_bit_pj"].value * 16
    router = tech.PIM_COMPONENTS["isaac"]["router_256b_pj"].value * 16 / 256
    edram = tech.PIM_COMPONENTS["isaac"]["edram_256b_pj"].value * 16 / 256
    groups = dict.fromkeys(("analog", "communication", "memory", "digital"), 0.0)
    for row in result["layers"]:
        c, e = row["counts"], row["energy_pj"]
        groups["analog"] += e["crossbar"] + e["d/a"] + e["a/d"]
        comm = c["input_reads"] * bus + c["outputs"] * router + c["psum_accesses"] * bus / 2
        groups["communication"] += comm
        groups["memory"] += (c["input_reads"] * edram + c["row_drives"] * arch.e_row_drive
                             + c["outputs"] * (edram + arch.e_output_write))
        groups["digital"] += e["digital"] + e["psums"] - c["psum_accesses"] * bus / 2
    groups["communication"] += result["energy_pj"]["static"]
    pools = result["energy_pj"]["digital"] - sum(row["energy_pj"]["digital"] for row in result["layers"])
    groups["digital"] += pools
    total = sum(groups.values())
    assert math.isclose(total, result["total_pj"], rel_tol=1e-6), (total, result["total_pj"])
    return {k: v / total for k, v in groups.items()}


def main():
    from lean.hw.pim import arch as pa

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print the figures as JSON too")
    args = parser.parse_args()
    out = {}

    print("1. ISAAC peak (16-bit), lean against the corrected paper (Table IV ISAAC-CE, Table I totals)")
    isaac = pa.get_arch("isaac")
    p = pa.peak(isaac)
    rows = (("GOPs/s/mm2", p["gops_per_s_mm2"], 478.95), ("GOPs/W", p["gops_per_w"], 627.5),
            ("TOPs/s", p["tops_per_s"], 41.3), ("power W", p["power_w"], 65.8), ("area mm2", p["area_mm2"], 85.4))
    for name, lean_v, paper in rows:
        print(f"   {name:<11} lean {lean_v:>9.2f}   paper {paper:>8.2f}   {100 * (lean_v / paper - 1):+6.1f}%")
    out["isaac_peak"] = {name: {"lean": v, "paper": ref} for name, v, ref in rows}

    print("\n2. TIMELY against PRIME, 8 bits (paper: 21.0 vs 2.10 TOPs/W, 10x)")
    timely, prime = pa.get_arch("timely"), pa.get_arch("prime")
    pt, pp = pa.peak(timely), pa.peak(prime)
    print(f"   peak TOPs/W: TIMELY {pt['tops_per_w']:.2f} (paper 21.0), PRIME {pp['tops_per_w']:.2f} (paper 2.10), "
          f"ratio {pt['tops_per_w'] / pp['tops_per_w']:.1f}x (paper 10.0x)")
    per_bit = timely.with_overrides(e_input_read=timely.e_input_read * 8, e_output_write=timely.e_output_write * 8,
                                    e_psum_access=timely.e_psum_access * 8)
    print(f"   (TIMELY's Table II buffer figures read per bit instead of per 8-bit access, as lean and Accelergy read "
          f"them: {pa.peak(per_bit)['tops_per_w']:.1f} TOPs/W)")
    print(f"   peak GOPs/s/mm2: TIMELY {pt['gops_per_s_mm2']:,.0f} (paper 38,330), PRIME {pp['gops_per_s_mm2']:,.0f}, "
          f"ratio {pt['gops_per_s_mm2'] / pp['gops_per_s_mm2']:.1f}x (paper: up to 31.2x)")
    ratios = {}
    print(f"   {'workload':<12} {'TIMELY TOPs/W':>13} {'PRIME TOPs/W':>12} {'energy x':>9} {'images/s x':>10}")
    for name in WORKLOADS:
        t, q = pa.evaluate(timely, name), pa.evaluate(prime, name)
        ratios[name] = {"timely_tops_per_w": t["tops_per_w"], "prime_tops_per_w": q["tops_per_w"],
                        "energy_x": q["total_pj"] / t["total_pj"],
                        "throughput_x": t["images_per_s"] / q["images_per_s"],
                        "prime_fits": q["fits"], "timely_fits": t["fits"]}
        r = ratios[name]
        print(f"   {name:<12} {r['timely_tops_per_w']:>13.2f} {r['prime_tops_per_w']:>12.2f} {r['energy_x']:>8.1f}x "
              f"{r['throughput_x']:>9.1f}x")
    geo = math.exp(sum(math.log(r["energy_x"]) for r in ratios.values()) / len(ratios))
    print(f"   geometric mean energy efficiency gain {geo:.1f}x (paper 10x); VGG-16 throughput "
          f"{ratios['vgg16']['throughput_x']:.1f}x (paper: 736.6x)")
    t16, i16 = pa.peak(pa.get_arch("timely", 16)), pa.peak(isaac)
    print(f"   16 bits: TIMELY {t16['tops_per_w']:.2f} TOPs/W (paper 6.90), ISAAC {i16['tops_per_w']:.2f} (TIMELY's "
          f"figure 0.38, ISAAC's own 0.63), ratio {t16['tops_per_w'] / i16['tops_per_w']:.1f}x (paper 18.2x)")
    out["timely_vs_prime"] = {"peak": {"timely": pt, "prime": pp}, "workloads": ratios, "geomean_energy_x": geo,
                              "timely16_tops_per_w": t16["tops_per_w"], "isaac_tops_per_w": i16["tops_per_w"]}

    print("\n3. TIMELY's ideas (energy without each, x TIMELY; ALB + O2IR's share of the whole saving, paper 99%)")
    out["ablation"] = {}
    for name in WORKLOADS:
        r = pa.ablation(timely, name)
        by = {row["ideas"]: row for row in r["rows"]}
        out["ablation"][name] = r
        print(f"   {name:<12} all off {r['baseline_x']:5.2f}x | without alb {by['alb']['without_x']:.2f}x, tdi "
              f"{by['tdi']['without_x']:.2f}x, o2ir {by['o2ir']['without_x']:.2f}x | alone saves: alb "
              f"{by['alb']['share_of_saving']:.0%}, tdi {by['tdi']['share_of_saving']:.0%}, o2ir "
              f"{by['o2ir']['share_of_saving']:.0%}; alb+o2ir {by['alb+o2ir']['share_of_saving']:.1%}")

    print("\n4. Energy splits (PRIME on VGG-16, ISAAC on ResNet-18: 16-bit VGG-16 does not fit one ISAAC chip)")
    q = pa.evaluate(prime, "vgg16")
    e, total = q["energy_pj"], q["total_pj"]
    prime_split = {"inputs": e["inputs"] / total, "psums+outputs": (e["psums"] + e["outputs"]) / total,
                   "rest": (e["crossbar"] + e["d/a"] + e["a/d"] + e["digital"]) / total}
    print("   PRIME  lean: " + ", ".join(f"{k} {v:.0%}" for k, v in prime_split.items())
          + "   paper: inputs 36%, psums+outputs 47%, rest 17%")
    i = pa.evaluate(isaac, "resnet18")
    split = isaac_split(isaac, i)
    print("   ISAAC  lean: " + ", ".join(f"{k} {v:.0%}" for k, v in split.items())
          + "   paper: analog with DAC/ADC 61%, communication 19%, memory 12%, digital 8%"
          + ("" if i["fits"] else "  (does not fit: costed as if it did)"))
    out["splits"] = {"prime": prime_split, "isaac": split}
    write_figures(RESULTS, out, args.json)


if __name__ == "__main__":
    main()
