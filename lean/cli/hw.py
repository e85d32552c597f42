"""``lean hw predict``, ``lean hw accels``, ``lean hw workloads`` (``lean hw pim`` is in ``pim.py``)."""

import click

from . import _common as common
from .pim import pim

LEVELS = ("mac", "rf", "noc", "glb", "dram", "rebuild", "leak")  # rebuild: SmartExchange's shift-and-adds


@click.group()
def hw():
    """Cost a network on an accelerator model: energy, latency, traffic."""


@hw.command("predict")
@click.option("--workload", "workload_spec", required=True,
              help="Built-in net (ImageNet size), lean net (net:NAME, CIFAR size), checkpoint (.h5) or layer file "
                   "(.toml/.json).")
@click.option("--accel", required=True, help="Built-in accelerator (see `lean hw accels`) or a .toml file.")
@click.option("--dataflow", default=None, type=click.Choice(["rs", "ws", "os", "is", "nlr"]))
@click.option("--batch", default=None, type=click.IntRange(min=1))
@click.option("--set", "sets", multiple=True, metavar="KEY=VALUE", help="Override an accelerator parameter.")
@click.option("--objective", default="energy", show_default=True, type=click.Choice(["energy", "latency", "edp"]))
@common.json_option("the per-layer and total prediction")
@click.option("--mapping", "mapping_file", default=None, type=click.Path(dir_okay=False),
              help="TOML or JSON of given mappings by layer name (\"*\" for all), as --show-mapping prints them; "
                   "other layers are searched.")
@click.option("--show-mapping", is_flag=True, help="Print the mappings used, as a file --mapping reads back.")
@click.option("--effort", default="default", show_default=True, type=click.Choice(["quick", "default", "thorough"]),
              help="How hard the mapper searches (quick for sweeps, thorough for one layer).")
@click.option("--plot", default=None, type=click.Path(dir_okay=False), help="Energy breakdown per layer (PNG).")
def predict(workload_spec, accel, dataflow, batch, sets, objective, mapping_file, show_mapping, effort, as_json,
            plot):
    """Per-layer and total energy, latency and DRAM traffic of a workload on an accelerator."""
    from ..hw import predict as run_predict

    result = run_predict(workload_spec, accel, dataflow=dataflow, batch=batch, overrides=list(sets),
                         objective=objective, mappings=mapping_file, effort=effort)
    if show_mapping and not as_json:
        from ..hw.mapping import dumps

        click.echo(dumps({layer["name"]: layer["mapping"] for layer in result["layers"]}), nl=False)
        return
    if plot:
        from ..plot import energy_breakdown

        energy_breakdown(result, plot)
    common.finish(result, as_json, lambda r: print_prediction(r, objective))
    if plot and not as_json:
        click.echo(f"breakdown plot written to {plot}")


def _energy_scale(unit):
    """Column label and divisor for energies in ``unit`` (pJ, or Eyeriss-normalized MAC units)."""
    return ("uJ", 1e6) if unit == "pJ" else (f"M x {unit.removeprefix('x ')}", 1e6)


def print_prediction(r, objective):
    acc, layers, t = r["accelerator_parameters"], r["layers"], r["total"]
    label, scale = _energy_scale(r.get("energy_unit", "pJ"))
    batch = r["batch"]
    click.echo(f"{r['workload']} on {acc['name']} ({acc['dataflow']}, {acc['array_rows']}x{acc['array_cols']} PEs, "
               f"{acc['glb_bytes'] // 1024} kB buffer, {acc['word_bits']}-bit, {acc['clock_mhz']:g} MHz), batch "
               f"{batch}, mappings chosen for {objective}")
    click.echo(f"{'layer':<24} {'MMACs':>9} {'util':>5} {'cycles':>12} {'bound':>7} {'ms':>9} {'energy ' + label:>14} "
               + " ".join(f"{lv:>7}" for lv in LEVELS) + f" {'DRAM kB':>9}")
    for layer in layers:
        e = layer["energy_pj"]
        shares = [layer["energy_breakdown_pj"].get(lv, 0.0) / e * 100 if e else 0 for lv in LEVELS]
        click.echo(f"{layer['name'][:24]:<24} {layer['macs'] / 1e6:>9.2f} {layer['utilization']:>5.2f} "
                   f"{layer['cycles']:>12,.0f} {layer['bound']:>7} {layer['latency_ms']:>9.3f} {e / scale:>14.2f} "
                   + " ".join(f"{v:>6.1f}%" for v in shares) + f" {layer['dram_bytes'] / 1e3:>9.1f}")
    frames = 1e3 / t["latency_ms"] * batch if t["latency_ms"] else 0
    power = f"{t['average_power_mw']:.1f} mW average, " if r.get("energy_unit", "pJ") == "pJ" else ""
    click.echo(f"total: {t['macs'] / 1e6:,.1f} M MACs, {t['latency_ms']:.3f} ms ({frames:,.1f} frames/s), "
               f"energy {t['energy_pj'] / scale:,.2f} {label}, {power}{t['dram_bytes'] / 1e6:.2f} MB DRAM")
    total_e = t["energy_pj"] or 1.0   # all energies zero (every e_* set to 0): print 0% rather than divide by it
    click.echo("energy by level: " + ", ".join(f"{k} {v / total_e * 100:.1f}%"
                                              for k, v in t["energy_breakdown_pj"].items()))
    area = r["area_mm2"]
    leak = r.get("leakage_mw")
    click.echo(f"area {area['total']:.2f} mm2 (" + ", ".join(f"{k} {v:.2f}" for k, v in area.items() if k != "total")
               + "; network and control outside the PEs not counted), leakage "
               + (f"{leak['total']:.2f} mW" if leak else "not in the tables for this node"))
    searched = sum(layer["search"].get("evaluated", 0) for layer in layers)
    click.echo(f"mapper: {searched:,} mappings costed" + (" (the space was pruned; see lean.hw.mapper)"
                                                         if any(layer["search"].get("pruned") for layer in layers)
                                                         else ""))
    click.echo("energy by data (RF, NoC, buffer, DRAM): " + ", ".join(f"{k} {v / total_e * 100:.1f}%"
                                                    for k, v in t["energy_by_data_pj"].items()))
    if r.get("energy_unit", "pJ") != "pJ":
        click.echo(f"(energies in Eyeriss-normalized units: 1 = one 16-bit MAC at e_mac_pj = {acc['e_mac_pj']:g}; "
                   "the JSON fields named _pj count these units; no power figure without joules)")


@hw.command("accels")
@common.json_option("the accelerators' parameters")
def accels(as_json):
    """Built-in accelerators and their parameters."""
    from ..hw.accelerator import catalog

    common.finish(catalog(), as_json, print_accels)


def print_accels(rows):
    for r in rows:
        click.echo(f"{r['name']:<16} {r['dataflow']:<4} {r['array_rows']}x{r['array_cols']} PEs, "
                   f"{r['glb_bytes'] // 1024} kB buffer, {r['word_bits']}-bit, {r['clock_mhz']:g} MHz, "
                   f"DRAM {r['dram_bytes_per_cycle']:.1f} B/cycle, energies ({r['tech']}) MAC {r['e_mac_pj']:.3g} "
                   f"RF {r['e_rf_pj']:.3g} NoC {r['e_noc_pj']:.3g} GLB {r['e_glb_pj']:.3g} DRAM {r['e_dram_pj']:.3g}, "
                   f"{r['area_mm2']:.2f} mm2 (PEs, RFs, buffer)")
    click.echo("any field can be changed with --set KEY=VALUE (see `lean hw accels --json` for the names)")


@hw.command("workloads")
@common.json_option("the workloads")
def workloads(as_json):
    """Built-in reference networks (ImageNet sizes) with layer and MAC counts."""
    from ..hw.workload import catalog

    common.finish(catalog(), as_json, print_workloads)


def print_workloads(rows):
    for r in rows:
        click.echo(f"{r['name']:<17} {r['layers']:>3} conv/fc layers, {r['macs'] / 1e6:>9,.1f} M MACs, "
                   f"input {'x'.join(map(str, r['input']))}")
    click.echo("also: any `lean nets` name as net:NAME (CIFAR sizes; vgg16 and mobilenetv2 alone mean the "
               "ImageNet ones), a checkpoint (.h5), a .toml/.json layer list, or an ONNX model (.onnx)")


def _share_or_profile(ctx, param, value):
    """--ce-row-density: a share in (0, 1], or the name of the sourced per-layer profile."""
    if value == "smartdeal":
        return value
    try:
        share = float(value)
    except ValueError:
        share = -1.0
    if not 0.0 < share <= 1.0:
        raise click.BadParameter(f"takes a share in (0, 1] or smartdeal; got {value!r}")
    return share


@hw.command("compare")
@click.option("--workload", "workload_spec", required=True,
              help="A workload as lean hw predict takes it; a SmartExchange checkpoint gives its real Ce and B.")
@click.option("--accels", default="smartexchange,diannao,scnn,cambricon-x,bit-pragmatic", show_default=True,
              help="Designs to compare (comma-separated).")
@click.option("--reference", default="diannao", show_default=True, help="The design the others are normalized to.")
@click.option("--batch", default=None, type=click.IntRange(min=1), help="Batch size of --workload.")
@click.option("--ce-row-density", default="1", show_default=True, callback=_share_or_profile,
              help="SmartExchange on a net without SmartExchange layers: the share of Ce rows kept, or smartdeal "
                   "(the authors' per-layer pruning; workloads resnet18-cifar, mobilenetv2-cifar).")
@click.option("--ones-per-activation", default=None, type=click.FloatRange(min=0),
              help="Bit-pragmatic: mean one bits of an activation [1.62, SmartExchange's MobileNetV2 figure].")
@click.option("--plot", default=None, type=click.Path(dir_okay=False), help="Energy by component per design (PNG).")
@common.json_option("every design's cycles, energy by component, speed-up and energy efficiency")
def compare(workload_spec, accels, reference, batch, ce_row_density, ones_per_activation, plot, as_json):
    """The SmartExchange accelerator against DianNao, SCNN, Cambricon-X and Bit-pragmatic on one workload."""
    from ..hw.accel.compare import ONES_PER_ACTIVATION
    from ..hw.accel.compare import compare as run_compare

    ones = ONES_PER_ACTIVATION if ones_per_activation is None else ones_per_activation
    result = run_compare(workload_spec, tuple(a.strip() for a in accels.split(",") if a.strip()), reference, batch,
                         ce_row_density, ones)
    if plot:
        from .. import plot as plots

        rows = [{"name": n, "energy_breakdown_pj": d["energy_breakdown_pj"]} for n, d in result["designs"].items()]
        plots.energy_breakdown({"layers": rows}, plot, levels=("mac", "rf", "noc", "glb", "dram", "rebuild", "leak"))
    common.finish(result, as_json, print_compare)


def print_compare(r):
    click.echo(f"{r['workload']} (batch {r['batch']}), normalized to {r['reference']}"
               + ("" if r["smartexchange_layers"] else
                  " (no SmartExchange layers: SmartExchange decomposed as if with "
                  f"{r['assumptions']['ce_rows_kept']:.1%} of Ce rows and {r['assumptions']['weights_kept']:.1%} "
                  f"of the weights kept, by --ce-row-density {r['assumptions']['ce_row_density']})"))
    click.echo(f"{'design':<20} {'ms':>9} {'uJ':>10} {'speed-up':>8} {'energy eff.':>11}  energy split")
    for name, d in r["designs"].items():
        split = ", ".join(f"{k} {v / d['energy_pj']:.0%}" for k, v in d["energy_breakdown_pj"].items()
                          if v / d["energy_pj"] >= 0.005)
        click.echo(f"{name:<20} {d['latency_ms']:>9.3f} {d['energy_pj'] / 1e6:>10.2f} {d['speedup']:>7.2f}x "
                   f"{d['energy_efficiency']:>10.2f}x  {split}")
    if "smartexchange-dense" in r["designs"]:
        se, dense = r["designs"]["smartexchange"], r["designs"]["smartexchange-dense"]
        click.echo(f"SmartExchange's method alone (against its accelerator on dense 8-bit weights): "
                   f"{dense['latency_ms'] / se['latency_ms']:.2f}x faster, "
                   f"{dense['energy_pj'] / se['energy_pj']:.2f}x less energy")
    a = r["assumptions"]
    click.echo(f"assumed: {a['clock']}; Bit-pragmatic {a['ones_per_activation']:.2f} one bits an activation, "
               f"{a['pragmatic_steps_per_16']:.2f} cycles a step; accelerator files: "
               + ", ".join(f"{k} = {v}" for k, v in a["accelerator_files"].items())
               + " (lean hw accels --json lists every parameter and its source)")


@hw.command("explore")
@click.option("--workload", "workload_spec", required=True, help="A workload as lean hw predict takes it.")
@click.option("--target", default="ultra96", show_default=True, type=click.Choice(["ultra96", "zc706", "asic"]))
@click.option("--budget", default=None, metavar="dsp=N,bram18=N,lut=N[,ff=N] | area=MMmm2",
              help="Resource limits; those not given are the target device's own (an ASIC's area in mm2).")
@click.option("--objective", default="latency", show_default=True, type=click.Choice(["latency", "energy", "edp"]))
@click.option("--batch", default=None, type=click.IntRange(min=1), help="Batch size of --workload.")
@click.option("--top", default=20, show_default=True, type=click.IntRange(1, 1000),
              help="Candidates the fine stage simulates.")
@click.option("--samples", default=None, type=click.IntRange(min=1),
              help="Rank a seeded random sample of this many design points instead of all.")
@click.option("--seed", default=0, show_default=True, type=click.IntRange(min=0), help="Seed of --samples.")
@click.option("--scheduler", default=None, metavar="ADDRESS", help="A Dask scheduler (tcp://host:8786).")
@click.option("--workers", default=None, type=click.IntRange(min=1),
              help="Local workers (default: one per core; 1: in this process).")
@click.option("-o", "--out", "out_file", default="DESIGN.json", show_default=True, type=click.Path(dir_okay=False),
              help="Where the chosen design is written (lean hw rtl reads it).")
@click.option("--plot", default=None, type=click.Path(dir_okay=False), help="The Pareto front (PNG).")
@common.json_option("the search, its Pareto front and the chosen design")
def explore(workload_spec, target, budget, objective, batch, top, samples, seed, scheduler, workers, out_file, plot,
            as_json):
    """AutoDNNchip's two-stage design search: rank every design point under the budget, simulate the best."""
    import json
    from pathlib import Path

    from ..hw.accel.explore import explore as run_explore
    from ..hw.accel.explore import parse_budget

    bar = common.Progress()
    result = run_explore(workload_spec, target, parse_budget(budget), objective, batch, top, samples, seed,
                         scheduler, workers, progress=lambda done, total: bar.draw("ranking", done, total))
    bar.clear()
    Path(out_file).write_text(json.dumps({k: result[k] for k in ("design", "predicted", "workload", "target",
                                                                   "budget", "objective", "search")}, indent=1))
    result["design_file"] = str(out_file)
    if plot:
        from .. import plot as plots

        plots.pareto_front(result, plot)
    common.finish(result, as_json, print_explore)


def print_explore(r):
    s = r["search"]
    click.echo(f"{r['workload']} (batch {r['batch']}) on {r['target']}, budget "
               + ", ".join(f"{k} {v:g}" for k, v in r["budget"].items())
               + f", objective {r['objective']}: {s['candidates']:,} design points ranked in {s['ranked_s']:.2f} s "
               f"({s['per_minute']:,.0f} a minute, {s['engine']}, {s['workers']} worker(s)), {s['feasible']:,} "
               f"within the budget; the best {s['fine_simulated']} simulated")
    if s.get("note"):
        click.echo(s["note"])
    click.echo(f"Pareto front (latency against the share of the budget taken), {len(r['front'])} designs:")
    click.echo(f"{'template':>19} {'rows x cols':>12} {'bits':>4} {'packed':>6} {'ms':>9} {'share':>6} "
               f"{'energy mJ':>10}")
    for row in r["front"][:12]:
        d = row["design"]
        click.echo(f"{d['template']:>19} {d['rows']:>5} x {d['cols']:<4} {d['a_bits']:>4} {str(d['pack_dsp']):>6} "
                   f"{row['latency_s'] * 1e3:>9.3f} {row['budget_share']:>6.1%} {row['energy_pj'] / 1e9:>10.3f}")
    if len(r["front"]) > 12:
        click.echo(f"  ... {len(r['front']) - 12} more (--json)")
    d, p = r["design"], r["predicted"]
    used = ", ".join(f"{k} {p[k]:,.0f}" for k in ("dsp", "bram18", "lut", "ff") if k in p) or f"{p['area_mm2']:.2f} mm2"
    packed = ", two MACs per DSP" if d["pack_dsp"] else ""
    click.echo(f"chosen: {d['template']}, {d['rows']} x {d['cols']}, {d['a_bits']}-bit{packed}, "
               f"banks of {d['input_words']}/{d['weight_words']} words, output {d['output_words']}: {used}; "
               f"latency {p['simulated_latency_s'] * 1e3:.3f} ms simulated ({p['coarse_latency_s'] * 1e3:.3f} ms "
               f"coarse), array busy {p['array_busy']:.0%}, {p['energy_pj'] / 1e9:.3f} mJ")
    click.echo(f"its graph ({r['graph']['template']}): "
               + "; ".join(f"{e['from']} -> {e['to']} {e['tensor']} ({d[e['precision']]} bits)"
                           for e in r["graph"]["edges"]))
    click.echo(f"{'IP':>14} {'kind':>11} {'cycles':>12} {'energy mJ':>10}  resources")
    for ip in r["ips"]:
        res = ", ".join(f"{k} {ip[k]:,.0f}" for k in ("dsp", "bram18", "lut", "ff") if k in ip)
        if "area_mm2" in ip:
            res = f"{ip['area_mm2']:.3f} mm2"
        click.echo(f"{ip['ip']:>14} {ip['kind']:>11} {ip['coarse_cycles']:>12,.0f} {ip['energy_pj'] / 1e9:>10.4f}  "
                   f"{res}")
    a = r["assumptions"]
    click.echo(f"written to {r['design_file']} (lean hw rtl reads it); assumed: {a['clock_mhz']:g} MHz, DRAM "
               f"{a['dram_gb_s']:g} GB/s, energies {a['energies']}")


@hw.command("rtl")
@click.argument("design_file", type=click.Path(dir_okay=False))
@click.option("-o", "--out", "out_dir", default="build", show_default=True, type=click.Path(file_okay=False),
              help="Directory for the Verilog (and the simulation's and synthesis's files).")
@click.option("--simulate", is_flag=True,
              help="Run a small conv layer on it in Icarus Verilog and compare every output with NumPy's.")
@click.option("--synthesize", is_flag=True, help="Synthesize it with Yosys and count LUTs, DSPs, BRAMs, flip-flops.")
@click.option("--family", default="xcup", show_default=True, type=click.Choice(["xcup", "xc7"]),
              help="Yosys's synth_xilinx family: xcup (UltraScale+, as Ultra96) or xc7 (7-series, as ZC706).")
@common.json_option("the files written and the simulation's and synthesis's figures")
def rtl(design_file, out_dir, simulate, synthesize, family, as_json):
    """Write synthesizable Verilog for a design point (DESIGN.json): PE array, buffers, controller, test bench."""
    from ..hw import accel

    design = accel.load_design(design_file)
    result = {"design": design.to_dict(), "files": [str(p) for p in accel.emit(design, out_dir)]}
    if simulate:
        result["simulation"] = accel.simulate(design, out_dir)
    if synthesize:
        result["synthesis"] = accel.synthesize(design, out_dir, family)
    common.finish(result, as_json, print_rtl)


def print_rtl(r):
    d = r["design"]
    click.echo(f"{d['rows']}x{d['cols']} {d['template']} array, {d['a_bits']}-bit x {d['w_bits']}-bit into "
               f"{d['acc_bits']} bits{', two 8-bit MACs per DSP' if d['pack_dsp'] else ''}: "
               + ", ".join(r["files"]))
    if "simulation" in r:
        s = r["simulation"]
        click.echo(f"simulated ({s['m']} x {s['k']}) @ ({s['k']} x {s['n']}) in Icarus Verilog: {s['outputs']} "
                   f"outputs, {s['mismatches']} differ from NumPy's; {s['cycles']:,} cycles (predicted "
                   f"{s['predicted_cycles']:,}, {100 * s['cycle_error']:+.1f}%)")
    if "synthesis" in r:
        y, p = r["synthesis"]["yosys"], r["synthesis"]["predicted"]
        cells = sum(r["synthesis"]["cells"].values())
        click.echo(f"Yosys synth_xilinx -family {r['synthesis']['family']}: {cells:,} cells; "
                   + ", ".join(f"{k.upper()} {y[k]:,} (predicted {p[k]:,})" for k in ("lut", "dsp", "bram18", "ff")))


hw.add_command(pim)

COMMANDS = (hw,)
