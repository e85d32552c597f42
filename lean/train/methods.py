"""The training-method protocol: how a method (network slimming, early-bird, SMD, SLU, PSG, low-precision
training, the energy meter, DFS, later DDI) plugs into ``lean.train.Trainer``.

A method is a ``TrainingMethod``: every hook has a no-op default, and the trainer calls each hook of every
method in a fixed place of the loop (it never asks what a method can do):

====================  ==================================================================================
``prepare``           ``(model, config)`` once, before training: the model to train (SLU adds its gates)
``install(model)``    attach to the model; called again after a resume and after the model is replaced
``uninstall()``       detach (restore the layers)
``on_epoch_start``    ``(trainer)`` before the first step of an epoch
``skip_step``         ``(trainer, step)`` -> True to drop this step (no forward, no backward; SMD); with the
                      method's ``momentum_on_dropped`` the optimizer still steps on zero gradients
``on_batch``          ``(trainer, seed)`` before each forward, with the step's seed for any random draws (the
                      batch's labels are ``trainer.batch_labels``, for layers with losses of their own: DDI)
``before_update``     ``(trainer)`` after backward, before the optimizer step: may add to gradients
``after_update``      ``(trainer)`` after the optimizer step (a method that freezes weights restores them)
``learning_rate``     ``(trainer, t, lr)`` -> the learning rate at ``t`` epochs, given the run schedule's ``lr``
                      (a method that trains in phases runs a schedule per phase: DFS)
``on_epoch_end``      ``(trainer)`` after the epoch's evaluation; may replace the model (early-bird pruning)
``state`` / ``load_state``  a JSON-able dict that rides in the checkpoint under the method's ``name``
``summary()``         keys merged into the run's summary (``lean train --json``)
====================  ==================================================================================

How a method changes a layer's arithmetic: never by replacing the layer's methods, only through the two doors of
``lean.nn.hooks``: an operand hook on a conv or linear layer (``LayerOperandMethod`` installs one per layer) and
observers that watch calls (the energy meter).
"""

from ..errors import ConfigError


class TrainingMethod:
    """Base of every training method; see the module docstring for when each hook runs."""

    name = ""  # key of its state in checkpoints; every method of a run has its own
    momentum_on_dropped = False  # a step this method drops still runs the optimizer on zero gradients (SMD)

    def prepare(self, model, config):
        return model

    def install(self, model):
        pass

    def uninstall(self):
        pass

    def on_epoch_start(self, trainer):
        pass

    def skip_step(self, trainer, step):
        return False

    def on_batch(self, trainer, seed):
        pass

    def before_update(self, trainer):
        pass

    def after_update(self, trainer):
        pass

    def learning_rate(self, trainer, t, lr):
        return lr

    def on_epoch_end(self, trainer):
        pass

    def state(self):
        return {}

    def load_state(self, state):
        pass

    def summary(self):
        return {}


class LayerOperandMethod(TrainingMethod):
    """A method that changes how layers multiply: one ``lean.nn.hooks.OperandHook`` per layer of ``layer_types``
    (``make_hook(name, index, layer)``), installed with ``set_operand_hook`` and removed on ``uninstall``. Runs on
    plain float layers only (not compressed or quantized ones). ``seed`` is the current step's seed, for
    stochastic rounding."""

    label = ""
    layer_types = ()

    def __init__(self):
        self.seed = 0
        self._hooked = []

    def make_hook(self, name, index, layer):
        raise NotImplementedError

    def on_batch(self, trainer, seed):
        self.seed = int(seed)

    def install(self, model):
        self.uninstall()
        layers = [(n, m) for n, m in model.net.named_modules() if isinstance(m, self.layer_types)]
        for index, (name, layer) in enumerate(layers):
            if layer.form is not None or layer.input_bits is not None:
                raise ConfigError(f"{name}: {self.label} runs on plain float layers (not compressed or quantized)")
            if layer.operand_hook is not None:
                self.uninstall()
                raise ConfigError(f"{name}: {self.label} and another training method would both change how this "
                                  "layer multiplies (e.g. --psg with --eb-precision); use one of them")
            layer.set_operand_hook(self.make_hook(name, index, layer))
            self._hooked.append(layer)

    def uninstall(self):
        for layer in self._hooked:
            layer.set_operand_hook(None)
        self._hooked = []
