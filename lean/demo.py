"""``lean demo``: train LeNet-5 on the shipped digits, quantize it to 8 bits and cost both on Eyeriss, offline.

A tour of the three rooms in a few seconds: ``lean.train.start`` (LeNet-5 on the digits: batch 32, lr 0.05,
15 epochs, settings of its own for the small dataset), then
``lean.compress.pipeline.compress`` (8-bit post-training quantization, per channel, of weights and
activations), then ``lean.hw.predict`` on the Eyeriss model for the float and the 8-bit checkpoints.
"""

from pathlib import Path

from .compress.pipeline import compress
from .hw import predict
from .nn.checkpoint import claim_output
from .train import TrainConfig, start


def quantized_path(out):
    """Where the demo writes the 8-bit model: ``NAME-int8.h5`` beside ``out``."""
    out = Path(out)
    return out.with_name(out.stem + "-int8.h5")


def run(*, epochs=15, out="lean-demo.h5", force=False, on_step=None, on_epoch=None) -> dict:
    """Run the demo; returns the training summary plus ``quantized`` (checkpoint, test_accuracy,
    compression_ratio) and ``eyeriss`` (energy per image and latency, float and int8).

    Both outputs (``out`` and its ``-int8`` sibling) are checked before any work: neither is overwritten
    without ``force``.
    """
    quantized_out = quantized_path(out)
    with claim_output(quantized_out, overwrite=force):
        config = TrainConfig(net="lenet5", data="digits", epochs=epochs, batch_size=32, lr=0.05, schedule="cosine",
                             weight_decay=5e-4, seed=0)
        summary = start(config, out=out, force=force, on_step=on_step, on_epoch=on_epoch)
        q = compress("quantize", out, quantized_out, force=force, weight_bits=8, activation_bits=8,
                     per_channel=True)
    cost = {}
    for name, path in (("float", out), ("int8", quantized_out)):
        total = predict(str(path), "eyeriss")["total"]
        cost[name] = {"energy_pj_per_image": total["energy_pj"], "latency_ms": total["latency_ms"]}
    summary["quantized"] = {"checkpoint": str(quantized_out), "test_accuracy": q["accuracy_after"],
                            "compression_ratio": q["compression_ratio"]}
    summary["eyeriss"] = cost
    return summary
