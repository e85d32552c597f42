"""Writes the checkpoints of this folder with lean as of main on 2026-11-27 (checkpoint format 1), before issue 11.

Kept as they are: tests check that files written by that lean still load, evaluate and resume. Do not
regenerate them with a newer lean. expected.json holds what that lean's `lean eval NAME --json` printed for each.
"""
from lean.data import load
from lean.nets import build, mlp
from lean.train import TrainConfig, Trainer
from lean.train.methods import prepare
from lean.compress.pipeline import compress

data = load("digits")
m = mlp(input_shape=data.input_shape, num_classes=10, seed=0, hidden=(16,))
m.name = "mlp"
Trainer(m, data, TrainConfig(net="mlp", data="digits", epochs=2, batch_size=32, lr=0.05), out="mlp.h5").run()
compress("quantize", "mlp.h5", "mlp-q4.h5", weight_bits=4, activation_bits=8, per_channel=True)
cfg = TrainConfig(net="resnet8", data="digits", epochs=2, batch_size=64, width=0.25, smd=0.5, slu=0.5, psg_adaptive=0.05)
model, hooks = prepare(cfg, build("resnet8", input_shape=data.input_shape, num_classes=10, width=0.25), fresh=True)
Trainer(model, data, cfg, out="e2.h5", hooks=hooks).run()
cfg = TrainConfig(net="resnet8", data="digits", epochs=6, batch_size=64, width=0.25, slim=1e-4, early_bird=0.5, eb_window=3, eb_epsilon=0.3, bn_init=0.5)
model, hooks = prepare(cfg, build("resnet8", input_shape=data.input_shape, num_classes=10, width=0.25), fresh=True)
def stop(h):
    if h["epoch"] == 4:
        raise KeyboardInterrupt
try:
    Trainer(model, data, cfg, out="eb.h5", hooks=hooks, on_epoch=stop).run()
except Exception as e:
    print(type(e).__name__, e)
base = "/tmp/fx/r8.h5"
Trainer(build("resnet8", input_shape=data.input_shape, num_classes=10, width=0.25), data, TrainConfig(net="resnet8", data="digits", epochs=1, batch_size=64, width=0.25), out=base).run()
compress("smartexchange", base, "r8-se.h5", theta=0.01)
