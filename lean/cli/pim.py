"""``lean hw pim``: processing in memory (ReRAM crossbar accelerators, digital PIM training, the functional
crossbar)."""

import click

from . import _common as common

ARCHS = ("prime", "isaac", "timely", "sot-mram", "floatpim")
# the functional crossbar's settings each design implies (--simulate --arch); an option given overrides its own
SIMULATE_DEFAULTS = {
    None: {"xbar": 128, "cell_bits": 2, "dac_bits": 1, "adc_bits": 8, "signed": "offset"},
    "all": {"weight_bits": 8, "input_bits": 8, "adc_range": "auto", "noise": 0.0, "variation": 0.0, "seed": 0},
    "isaac": {"xbar": 128, "cell_bits": 2, "dac_bits": 1, "adc_bits": 8, "signed": "offset"},
    "timely": {"xbar": 256, "cell_bits": 4, "dac_bits": 8, "adc_bits": 8, "signed": "offset"},
    "prime": {"xbar": 256, "cell_bits": 4, "dac_bits": 3, "adc_bits": 6, "signed": "differential"},
}


@click.command("pim")
@click.option("--arch", type=click.Choice(ARCHS), default=None,
              help="prime, isaac, timely: inference on ReRAM crossbars (energy, latency, area, peak figures); "
                   "sot-mram, floatpim: a training step in digital PIM (with --train).")
@click.option("--workload", "workload_spec", default=None,
              help="A workload as lean hw predict takes it; without --arch: its crossbar mapping and counts.")
@click.option("--batch", default=None, type=click.IntRange(min=1), help="Batch size of --workload.")
@click.option("--bits", type=click.Choice(["8", "16", "32"]), default=None,
              help="Weights and inputs: 8 or 16 on crossbars (default: the design's own); with --train 16 "
                   "(bfloat16, the default) or 32 (FP32).")
@click.option("--set", "sets", multiple=True, metavar="KEY=VALUE",
              help="Change a design parameter (the names: --json's 'parameters', or 'constants' with --train).")
@click.option("--ablate", default=None, metavar="IDEAS",
              help="TIMELY without each of alb, tdi, o2ir (comma-separated), one at a time and together.")
@click.option("--train", is_flag=True, help="Cost a training step (forward, backward, update) in floating point.")
@click.option("--simulate", "checkpoint", default=None, type=click.Path(dir_okay=False),
              help="A trained lean checkpoint to run through the functional crossbar (--arch sets its defaults).")
@click.option("--sweep", default=None, metavar="KEY=A..B",
              help="With --simulate: accuracy at each value, e.g. adc-bits=4..10 or noise=0,0.01,0.02.")
@click.option("--data", "data_name", default=None, help="Dataset (default: the one it was trained on).")
@click.option("--images", type=click.IntRange(min=1), default=1000, show_default=True,
              help="Test images (the first ones).")
@click.option("--xbar", type=click.IntRange(min=1), default=None, help="Rows of a crossbar [128; timely, prime: 256].")
@click.option("--cell-bits", type=click.IntRange(1, 8), default=None, help="Bits per cell [2; timely, prime: 4].")
@click.option("--dac-bits", type=click.IntRange(1, 16), default=None,
              help="Input bits applied at once [1; timely 8 (time-coded), prime 3].")
@click.option("--adc-bits", type=click.IntRange(0, 24), default=None, help="0: an ideal ADC [8; prime 6].")
@click.option("--adc-range", default=None, metavar="SHARE|auto", callback=lambda c, p, v: _adc_range(v),
              help="The ADC's full scale: a share in (0, 1] of the largest column sum the crossbar can produce, or "
                   "auto (each crossbar's ADC trimmed to the largest sum the layer's data produce) [auto].")
@click.option("--weight-bits", type=click.IntRange(2, 16), default=None,
              help="Weight bits on the functional crossbar or in the mapping [8].")
@click.option("--input-bits", type=click.IntRange(1, 16), default=None,
              help="Input bits on the functional crossbar or in the mapping [8].")
@click.option("--signed", type=click.Choice(["offset", "differential"]), default=None,
              help="Signed weights as an offset (ISAAC, TIMELY) or as positive and negative crossbars (PRIME).")
@click.option("--noise", type=click.FloatRange(min=0), default=None, help="Read noise, a share of the full scale [0].")
@click.option("--variation", type=click.FloatRange(min=0), default=None,
              help="Cell conductance spread (relative) [0].")
@click.option("--seed", type=click.IntRange(min=0), default=None, help="Seed of the noise and variation draws [0].")
@click.option("--threads", type=click.IntRange(min=1), help="Threads for lean's kernels.")
@click.option("--plot", default=None, type=click.Path(dir_okay=False),
              help="PNG: energy by layer and component, or the --sweep accuracy curve.")
@common.json_option("the result")
def pim(arch, workload_spec, batch, bits, sets, ablate, train, checkpoint, sweep, data_name, images, plot, as_json,
        threads, **crossbar):
    """Processing in memory: PRIME, ISAAC and TIMELY inference on ReRAM crossbars (--arch A --workload W), TIMELY's
    ideas one at a time (--ablate), a training step on SOT-MRAM or FloatPIM digital PIM (--train), a workload's
    crossbar mapping (--workload alone), and a trained model through a functional crossbar (--simulate)."""
    _check_modes(arch, workload_spec, checkpoint, train, ablate, sweep, bits, sets, crossbar,
                 {"--batch": batch, "--data": data_name})
    if checkpoint is not None:
        common.configure(threads)
        settings = _crossbar_settings(arch, crossbar)
        result = _simulate(checkpoint, data_name, images, settings, sweep)
        show = print_sweep if sweep else print_pim
    else:
        result, show = _cost(arch, workload_spec, batch, bits, sets, ablate, train, crossbar)
    _plot(result, plot)
    common.finish(result, as_json, show)
    if plot and not as_json:
        click.echo(f"plot written to {plot}")


def _adc_range(value):
    if value is None or value == "auto":
        return value
    try:
        share = float(value)
    except ValueError:
        share = None
    if share is None or not 0.0 < share <= 1.0:
        raise click.BadParameter(f"{value!r} is neither a share in (0, 1] nor auto", param_hint="'--adc-range'")
    return share


MAPPING_OPTIONS = ("xbar", "cell_bits", "dac_bits", "weight_bits", "input_bits", "signed")


def _check_modes(arch, workload_spec, checkpoint, train, ablate, sweep, bits, sets, crossbar, inputs):
    """One ``ConfigError`` line for options that do not go together (none is silently ignored)."""
    from ..errors import ConfigError

    given = [f"--{k.replace('_', '-')}" for k, v in crossbar.items() if v is not None]
    if (checkpoint is None) == (workload_spec is None):
        raise ConfigError("give one of --simulate CHECKPOINT or --workload W")
    if checkpoint is not None:
        if arch in ("sot-mram", "floatpim"):
            raise ConfigError(f"--simulate runs a crossbar design (isaac, timely, prime), not {arch}")
        for flag, value in (("--bits", bits), ("--set", sets), ("--ablate", ablate), ("--train", train),
                            ("--batch", inputs["--batch"])):
            if value:
                raise ConfigError(f"{flag} costs a workload: use it with --workload, not --simulate")
        return
    if inputs["--data"]:
        raise ConfigError("--data picks the test images of --simulate; a workload has no data")
    if sweep:
        raise ConfigError("--sweep needs --simulate CHECKPOINT")
    if train and arch not in ("sot-mram", "floatpim"):
        raise ConfigError("--train costs a training step on --arch sot-mram or --arch floatpim")
    if arch in ("sot-mram", "floatpim") and not train:
        raise ConfigError(f"{arch} is a training design: add --train")
    if ablate and arch != "timely":
        raise ConfigError("--ablate switches off TIMELY's ideas: use it with --arch timely")
    if arch is None and (bits or sets):
        raise ConfigError("--bits and --set change a design: give --arch")
    if arch is not None and given:
        raise ConfigError(f"{', '.join(given)}: the functional crossbar's options (--simulate) or the mapping's "
                          "(--workload without --arch); change a design with --set KEY=VALUE")
    unused = [f"--{k.replace('_', '-')}" for k, v in crossbar.items() if v is not None and k not in MAPPING_OPTIONS]
    if arch is None and unused:
        raise ConfigError(f"{', '.join(unused)}: only with --simulate (the mapping counts conversions, not their "
                          "precision)")


def _crossbar_settings(arch, given):
    """The functional crossbar's settings: the options given, else the design's (``SIMULATE_DEFAULTS``)."""
    defaults = dict(SIMULATE_DEFAULTS["all"], **SIMULATE_DEFAULTS[arch])
    values = {k: (defaults[k] if given[k] is None else given[k]) for k in given}
    return {"xbar_rows": values["xbar"], "cell_bits": values["cell_bits"], "dac_bits": values["dac_bits"],
            "weight_bits": values["weight_bits"], "input_bits": values["input_bits"], "signed": values["signed"],
            "adc_bits": values["adc_bits"] or None, "adc_range": values["adc_range"], "read_noise": values["noise"],
            "variation": values["variation"], "seed": values["seed"]}


def _cost(arch, workload_spec, batch, bits, sets, ablate, train, crossbar):
    """The cost modes: a crossbar mapping (no --arch), an inference design, its ablation, or a training step."""
    from ..hw import workload as wl

    workload = wl.load(workload_spec, batch=batch)
    bits = None if bits is None else int(bits)
    if arch is None:
        from ..hw.pim import map_workload

        defaults = dict(SIMULATE_DEFAULTS["all"], **SIMULATE_DEFAULTS[None])
        settings = {k: defaults[k] if crossbar[k] is None else crossbar[k] for k in MAPPING_OPTIONS}
        return map_workload(workload, **settings), print_pim_mapping
    if train:
        from ..hw.pim.training import evaluate_training

        return evaluate_training(arch, workload, bits=bits, overrides=list(sets)), print_training
    from ..hw.pim import arch as pim_arch

    design = pim_arch.get_arch(arch, bits, list(sets))
    if ablate:
        return pim_arch.ablation(design, workload, ablate.split(",")), print_ablation
    result = pim_arch.evaluate(design, workload)
    result["peak"] = pim_arch.peak(design)
    return result, print_cost


def _plot(result, path):
    if not path:
        return
    from .. import plot

    if "rows" in result and "sweep" in result:
        plot.accuracy_curve(result, path)
    elif "layers" in result and "energy_pj" in result:
        plot.energy_breakdown(result, path, levels=tuple(result["energy_pj"]), key="energy_pj")
    else:
        from ..errors import ConfigError

        raise ConfigError("--plot draws an energy breakdown (--arch with --workload) or a --sweep curve")


def _simulate(checkpoint, data_name, images, settings, sweep_spec=None):
    """``lean hw pim --simulate``: the checkpoint's first ``images`` test images, digital and on the crossbar (at
    each value of ``sweep_spec``)."""
    import time

    from ..hw.pim import parse_sweep, simulate, sweep
    from ..nn.checkpoint import load as load_checkpoint
    from ..train.run import CheckpointData

    name, values = parse_sweep(sweep_spec) if sweep_spec else (None, None)
    ckpt = load_checkpoint(checkpoint)
    model = ckpt.model()
    data = CheckpointData(ckpt, checkpoint, data_name, model)
    x = data.normalize(data.dataset.x_test[:images])
    t0 = time.perf_counter()
    if sweep_spec:
        result = sweep(model, x, data.dataset.y_test[:images], name, values, **settings)
    else:
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
    ranged = "trimmed to the data" if st["adc_range"] == "auto" else f"ranged to {st['adc_range']:g} of full scale"
    adc = f"{st['adc_bits']}-bit ADCs {ranged}" if st["adc_bits"] else "ideal ADCs"
    click.echo(f"{r['checkpoint']} on {r['data']}, {r['images']} test images: {st['xbar_rows']}-row crossbars of "
               f"{st['cell_bits']}-bit cells, {st['weight_bits']}-bit weights ({st['signed']}), {st['input_bits']}-bit "
               f"inputs {st['dac_bits']} bit(s) at a time, {adc}")
    click.echo(f"digital {r['digital_accuracy']:.2%}, crossbar {r['crossbar_accuracy']:.2%} "
               f"({100 * (r['crossbar_accuracy'] - r['digital_accuracy']):+.1f} points), the same answer on "
               f"{r['agreement']:.1%} of the images; {r['seconds']:.1f} s")


def _derived_note(r):
    if r.get("derived"):
        click.echo("derived (no published figure; see --json 'derived'): " + "; ".join(r["derived"]))


def print_cost(r):
    unit = 1e6                                                    # pJ -> uJ
    click.echo(f"{r['workload']} (batch {r['batch']}) on {r['arch']} at {r['bits']} bits: "
               f"{r['crossbars_needed']:,} crossbars hold it once, the chip has {r['crossbars']:,}"
               + ("" if r["fits"] else " (it does not fit: figures as if it did, one copy per layer)"))
    cats = list(r["energy_pj"])[:-1]
    click.echo(f"{'layer':<20} {'copies':>6} {'uJ':>10} " + " ".join(f"{c:>8}" for c in cats)
               + f" {'us':>9} {'TOPs/W':>7} {'GOPs/s':>9}")
    for row in r["layers"]:
        e = row["energy_pj"]
        click.echo(f"{row['name'][:20]:<20} {row['replicas']:>6,} {row['total_pj'] / unit:>10.2f} "
                   + " ".join(f"{e[c] / row['total_pj']:>8.1%}" for c in cats)
                   + f" {row['seconds'] * 1e6:>9.1f} {row['tops_per_w']:>7.2f} {row['gops_per_s']:>9,.0f}")
    total = r["total_pj"]
    click.echo("energy: " + ", ".join(f"{c} {v / unit:.2f} uJ ({v / total:.1%})" for c, v in r["energy_pj"].items()))
    click.echo("  by component: " + ", ".join(f"{c} {v / unit:.3g}" for c, v in r["components_pj"].items() if v)
               + " (uJ)")
    click.echo(f"total {total / unit:,.1f} uJ per batch, {r['energy_per_image_uj']:,.2f} uJ per image; latency "
               f"{r['latency_s'] * 1e3:.3f} ms (layers one after another), {r['images_per_s']:,.1f} images/s as a "
               f"pipeline; {r['tops_per_w']:.2f} TOPs/W, {r['gops_per_s_mm2']:,.1f} GOPs/s/mm2 on this workload")
    p = r["peak"]
    click.echo(f"peak: {p['tops_per_s']:,.2f} TOPs/s, {p['gops_per_s_mm2']:,.1f} GOPs/s/mm2, {p['gops_per_w']:,.1f} "
               f"GOPs/W ({p['tops_per_w']:.2f} TOPs/W), {p['power_w']:.1f} W; area {r['area_mm2']:.2f} mm2 ("
               + ", ".join(f"{k} {v:.2f}" for k, v in r["area"].items()) + ")")
    _derived_note({"derived": list(r["derived"])})


def print_ablation(r):
    click.echo(f"{r['workload']} (batch {r['batch']}) on {r['arch']}: {r['total_pj'] / 1e6:,.1f} uJ; without "
               f"{', '.join(r['ideas'])} {r['baseline_pj'] / 1e6:,.1f} uJ ({r['baseline_x']:.2f}x)")
    click.echo(f"{'ideas':<12} {'without them':>14} {'x timely':>9} {'alone (uJ)':>12} {'share of saving':>16}")
    for row in r["rows"]:
        click.echo(f"{row['ideas']:<12} {row['without_pj'] / 1e6:>14,.1f} {row['without_x']:>9.2f} "
                   f"{row['only_pj'] / 1e6:>12,.1f} {row['share_of_saving']:>16.1%}")
    click.echo("(alb: analog local buffers; tdi: time-domain interfaces; o2ir: only-once input read. 'alone': the "
               "design without all of them but this one; share of saving: what it alone saves of the whole saving)")


def print_sweep(r):
    st = r["settings"]
    click.echo(f"{r['checkpoint']} on {r['data']}, {r['images']} test images, {st['xbar_rows']}-row crossbars of "
               f"{st['cell_bits']}-bit cells, {st['weight_bits']}-bit weights, {st['input_bits']}-bit inputs "
               f"{st['dac_bits']} bit(s) at a time: digital {r['digital_accuracy']:.2%}")
    click.echo(f"{r['sweep']:>12} {'crossbar':>9} {'points':>7} {'agreement':>10}")
    for row in r["rows"]:
        click.echo(f"{row['value']:>12} {row['crossbar_accuracy']:>9.2%} "
                   f"{100 * (row['crossbar_accuracy'] - r['digital_accuracy']):>+7.1f} {row['agreement']:>10.1%}")
    click.echo(f"{r['seconds']:.1f} s")


def print_training(r):
    click.echo(f"one training step of {r['workload']} (batch {r['batch']}) on {r['design']} in {r['format']} "
               f"(exponent {r['exponent_bits']}, mantissa {r['mantissa_bits']} bits)")
    for op, c in r["op"].items():
        steps = ", ".join(f"{v:g} {k}" for k, v in c["steps"].items() if v)
        click.echo(f"  FP {op}: {steps} steps, {c['ns']:.1f} ns, {c['fj'] / 1e3:.2f} pJ per lane")
        if "parts" in c:
            click.echo("    " + "; ".join(f"{part} {v['sense']}+{v['write']}" for part, v in c["parts"].items())
                       + " (senses+writes; a 1-bit full add is one of each)")
    click.echo(f"{'layer':<20} {'MACs':>14} {'forward uJ':>11} {'back in uJ':>11} {'back w uJ':>10} {'update uJ':>10} "
               f"{'ms':>9}")
    for row in r["layers"]:
        e = row["energy_uj"]
        click.echo(f"{row['name'][:20]:<20} {row['ops']['forward']:>14,} {e['forward']:>11.1f} "
                   f"{e['backward_input']:>11.1f} {e['backward_weight']:>10.1f} {e['update']:>10.1f} "
                   f"{row['total_s'] * 1e3:>9.3f}")
    click.echo(f"total {r['total_uj'] / 1e3:,.2f} mJ, {r['seconds'] * 1e3:,.3f} ms per step; cells "
               f"{r['area_mm2']:.2f} mm2 ({r['constants']['lanes']:,} lanes x {r['bits_per_lane']} bits)")
    click.echo(f"constants: {r['sources']}")
