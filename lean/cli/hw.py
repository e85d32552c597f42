"""``lean hw predict``, ``lean hw pim``, ``lean hw accels``, ``lean hw workloads``."""

import click

from . import _common as common

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


@hw.command("pim")
@click.option("--simulate", "checkpoint", default=None, type=click.Path(dir_okay=False),
              help="A trained lean checkpoint to run through the functional crossbar.")
@click.option("--workload", "workload_spec", default=None,
              help="Map a workload (as lean hw predict takes it) onto crossbars: crossbars, conversions, steps.")
@click.option("--batch", default=None, type=click.IntRange(min=1), help="Batch size of --workload.")
@click.option("--data", "data_name", default=None, help="Dataset (default: the one it was trained on).")
@click.option("--images", type=click.IntRange(min=1), default=1000, show_default=True,
              help="Test images (the first ones).")
@click.option("--xbar", type=click.IntRange(min=1), default=128, show_default=True, help="Rows of a crossbar.")
@click.option("--cell-bits", type=click.IntRange(1, 8), default=2, show_default=True)
@click.option("--dac-bits", type=click.IntRange(1, 16), default=1, show_default=True,
              help="Input bits applied at once.")
@click.option("--adc-bits", type=click.IntRange(0, 24), default=8, show_default=True, help="0: an ideal ADC.")
@click.option("--adc-range", type=click.FloatRange(0, 1, min_open=True), default=1.0, show_default=True,
              help="The ADC's full scale, a share of the largest column sum the crossbar can produce.")
@click.option("--weight-bits", type=click.IntRange(2, 16), default=8, show_default=True)
@click.option("--input-bits", type=click.IntRange(1, 16), default=8, show_default=True)
@click.option("--signed", type=click.Choice(["offset", "differential"]), default="offset", show_default=True,
              help="Signed weights as an offset (ISAAC) or as positive and negative crossbars (PRIME).")
@click.option("--noise", type=click.FloatRange(min=0), default=0.0, help="Read noise, a share of the full scale.")
@click.option("--variation", type=click.FloatRange(min=0), default=0.0, help="Cell conductance spread (relative).")
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True,
              help="Seed of the noise and variation draws.")
@click.option("--threads", type=click.IntRange(min=1), help="Threads for lean's kernels.")
@common.json_option("the accuracies and settings")
def pim(checkpoint, workload_spec, batch, data_name, images, xbar, cell_bits, dac_bits, adc_bits, adc_range,
        weight_bits, input_bits, signed, noise, variation, seed, threads, as_json):
    """Processing in memory on ReRAM crossbars (defaults: ISAAC's 128-row crossbars of 2-bit cells, 1-bit DACs,
    8-bit ADCs). --simulate runs a trained model through a functional crossbar and compares its accuracy with the
    digital model's; --workload maps a network onto crossbars and counts what one pass asks of them. (The PRIME,
    ISAAC and TIMELY cost models come with the rest of issue 17.)"""
    from ..errors import ConfigError

    if (checkpoint is None) == (workload_spec is None):
        raise ConfigError("give one of --simulate CHECKPOINT or --workload W")
    crossbar = {"xbar_rows": xbar, "cell_bits": cell_bits, "dac_bits": dac_bits, "weight_bits": weight_bits,
                "input_bits": input_bits, "signed": signed}
    if workload_spec is not None:
        from ..hw import workload as wl
        from ..hw.pim import map_workload

        result = map_workload(wl.load(workload_spec, batch=batch), xbar=crossbar.pop("xbar_rows"), **crossbar)
        common.finish(result, as_json, print_pim_mapping)
        return
    common.configure(threads)
    result = _simulate(checkpoint, data_name, images, dict(crossbar, adc_bits=adc_bits or None, adc_range=adc_range,
                                                           read_noise=noise, variation=variation, seed=seed))
    common.finish(result, as_json, print_pim)


def _simulate(checkpoint, data_name, images, settings):
    """``lean hw pim --simulate``: the checkpoint's first ``images`` test images, digital and on the crossbar."""
    import time

    from ..hw.pim import simulate
    from ..nn.checkpoint import load as load_checkpoint
    from ..train.run import CheckpointData

    ckpt = load_checkpoint(checkpoint)
    model = ckpt.model()
    data = CheckpointData(ckpt, checkpoint, data_name, model)
    x = data.normalize(data.dataset.x_test[:images])
    t0 = time.perf_counter()
    result = simulate(model, x, data.dataset.y_test[:images], **settings)
    result.update(checkpoint=str(checkpoint), data=data.name, seconds=time.perf_counter() - t0)
    return result


def print_pim_mapping(r):
    st = r["settings"]
    click.echo(f"{r['workload']} on {st['xbar']}x{st['xbar']} crossbars of {st['cell_bits']}-bit cells, "
               f"{st['weight_bits']}-bit weights ({st['signed']}), {st['input_bits']}-bit inputs "
               f"{st['dac_bits']} bit(s) at a time")
    click.echo(f"{'layer':<24} {'crossbars':>9} {'cells used':>10} {'reads':>14} {'DAC conv.':>15} "
               f"{'ADC conv.':>15} {'steps':>10}")
    for m in r["layers"]:
        click.echo(f"{m['name'][:24]:<24} {m['crossbars']:>9,} {m['cell_utilization']:>10.1%} "
                   f"{m['crossbar_reads']:>14,} {m['dac_conversions']:>15,} {m['adc_conversions']:>15,} "
                   f"{m['steps']:>10,}")
    t = r["total"]
    click.echo(f"total: {t['crossbars']:,} crossbars to hold the network, {t['crossbar_reads']:,} crossbar reads, "
               f"{t['adc_conversions']:,} ADC conversions, {t['steps']:,} read steps (layers one after another)")


def print_pim(r):
    st = r["settings"]
    adc = f"{st['adc_bits']}-bit ADCs ranged to {st['adc_range']:g} of full scale" if st["adc_bits"] else "ideal ADCs"
    click.echo(f"{r['checkpoint']} on {r['data']}, {r['images']} test images: {st['xbar_rows']}-row crossbars of "
               f"{st['cell_bits']}-bit cells, {st['weight_bits']}-bit weights ({st['signed']}), {st['input_bits']}-bit "
               f"inputs {st['dac_bits']} bit(s) at a time, {adc}")
    click.echo(f"digital {r['digital_accuracy']:.2%}, crossbar {r['crossbar_accuracy']:.2%} "
               f"({100 * (r['crossbar_accuracy'] - r['digital_accuracy']):+.1f} points), the same answer on "
               f"{r['agreement']:.1%} of the images; {r['seconds']:.1f} s")


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
        click.echo(f"{r['name']:<12} {r['layers']:>3} conv/fc layers, {r['macs'] / 1e6:>9,.1f} M MACs, "
                   f"input {'x'.join(map(str, r['input']))}")
    click.echo("also: any `lean nets` name as net:NAME (CIFAR sizes; vgg16 and mobilenetv2 alone mean the "
               "ImageNet ones), a checkpoint (.h5), a .toml/.json layer list, or an ONNX model (.onnx)")


COMMANDS = (hw,)
