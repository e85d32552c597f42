"""Layers with explicit forward/backward, losses, optimizers, schedules, init, the Model container, the hooks
through which training methods change or watch layers, and checkpoint reading and writing."""

from .checkpoint import Checkpoint, claim_output, describe, load_model
from .gates import GateController, GatedResidual
from .hooks import LayerPrecision, Observer, OperandHook
from .init import kaiming_init
from .layers import (
                     AvgPool2d,
                     BatchNorm,
                     ChannelSelect,
                     Conv2d,
                     Dropout,
                     Flatten,
                     GlobalAvgPool,
                     Linear,
                     MaxPool2d,
                     ReLU,
                     ReLU6,
                     ShortcutPadA,
)
from .loss import softmax, softmax_cross_entropy
from .model import Model
from .module import DenseLayer, Identity, Module, Residual, Sequential, module_from_config, module_to_config
from .optim import SGD, Adam, make_optimizer
from .schedule import SCHEDULES, Schedule

__all__ = [
    "kaiming_init", "AvgPool2d", "BatchNorm", "ChannelSelect", "Conv2d", "Dropout", "Flatten", "GlobalAvgPool",
    "Linear",
    "MaxPool2d", "ReLU", "ReLU6", "ShortcutPadA", "softmax", "softmax_cross_entropy", "Model", "Identity",
    "Module", "Residual", "DenseLayer",
    "Sequential", "module_from_config", "module_to_config", "SGD", "Adam", "make_optimizer", "SCHEDULES",
    "Schedule", "GateController", "GatedResidual", "Checkpoint", "claim_output", "describe", "load_model",
    "LayerPrecision", "Observer", "OperandHook",
]
