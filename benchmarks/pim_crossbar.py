"""A trained model through the functional crossbar: accuracy against ADC bits, and the time it takes (issue 17
target: a Fashion-MNIST ResNet-20 at 8-bit weights and inputs, 4-bit cells, 128x128 crossbars, within 1 point of
digital at 8 ADC bits; 1,000 test images in under a minute without noise).

    python benchmarks/pim_crossbar.py --checkpoint run.h5 --adc-bits 8 [--adc-range auto|0.125]
        [--signed differential|offset] [--images 1000]
    python benchmarks/pim_crossbar.py --summary

One setting per call (a pass over 1,000 images takes tens of seconds), appended to
benchmarks/results/pim_crossbar.jsonl. The checkpoint is any lean run on Fashion-MNIST, e.g.
``lean train --net resnet20 --data fashion-mnist --epochs 15 -o r20.h5``. ``--adc-bits 0`` is the ideal converter.
The time is the crossbar pass alone (the digital pass is timed apart), two threads.
"""

import argparse
import json
import time
from pathlib import Path

from _runs import append_result

RESULTS = Path(__file__).parent / "results" / "pim_crossbar.jsonl"


def run(args):
    import lean
    from lean.data import load
    from lean.hw.pim import simulate
    from lean.nn import load_model
    from lean.nn.checkpoint import load as load_checkpoint

    lean.configure(threads=2)
    model = load_model(args.checkpoint)
    ckpt = load_checkpoint(args.checkpoint)
    data = load("fashion-mnist")
    x = data.normalize(data.x_test[:args.images], ckpt.mean, ckpt.std)
    y = data.y_test[:args.images]
    adc_range = args.adc_range if args.adc_range == "auto" else float(args.adc_range)
    settings = {"weight_bits": 8, "input_bits": 8, "cell_bits": 4, "xbar_rows": 128, "dac_bits": 1,
                "adc_bits": args.adc_bits or None, "adc_range": adc_range, "signed": args.signed}
    t0 = time.perf_counter()
    model.predict(x)
    digital_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    r = simulate(model, x, y, **settings)
    both_s = time.perf_counter() - t0
    row = {"checkpoint": str(args.checkpoint), "net": model.name, "images": r["images"], **settings,
           "digital_accuracy": r["digital_accuracy"], "crossbar_accuracy": r["crossbar_accuracy"],
           "agreement": r["agreement"], "crossbar_s": round(both_s - digital_s, 2), "digital_s": round(digital_s, 2)}
    append_result(RESULTS, row)


def summary():
    rows = [json.loads(line) for line in RESULTS.read_text().splitlines()] if RESULTS.exists() else []
    print(f"{'checkpoint':<58} {'signed':>12} {'ADC bits':>8} {'range':>6} {'digital':>8} {'crossbar':>9} {'gap':>6} "
          f"{'s':>6}")
    for r in rows:
        bits = r["adc_bits"] or "ideal"
        ranged = r["adc_range"] if isinstance(r["adc_range"], str) else f"{r['adc_range']:.3f}"
        print(f"{r['checkpoint'][-58:]:<58} {r.get('signed', 'differential'):>12} {bits:>8} {ranged:>6} "
              f"{r['digital_accuracy']:>8.2%} "
              f"{r['crossbar_accuracy']:>9.2%} {100 * (r['crossbar_accuracy'] - r['digital_accuracy']):>+6.1f} "
              f"{r['crossbar_s']:>6.1f}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--checkpoint")
    ap.add_argument("--adc-bits", type=int, default=8, help="0: an ideal converter")
    ap.add_argument("--adc-range", default="auto",
                    help="the ADC's full scale as a share of the largest possible column sum, or auto (trimmed to the "
                         "data; rows before the signed field were differential)")
    ap.add_argument("--signed", default="differential", choices=("differential", "offset"))
    ap.add_argument("--images", type=int, default=1000)
    ap.add_argument("--summary", action="store_true")
    args = ap.parse_args()
    if args.summary or not args.checkpoint:
        summary()
    else:
        run(args)


if __name__ == "__main__":
    main()
