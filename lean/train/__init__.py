"""The training loop, metrics and checkpoints."""

from .checkpoint import Checkpoint, CheckpointError, load, load_model, save
from .loop import TrainConfig, Trainer, TrainingDiverged, TrainingInterrupted, accuracy

__all__ = ["Checkpoint", "CheckpointError", "load", "load_model", "save", "TrainConfig", "Trainer",
           "TrainingDiverged", "TrainingInterrupted", "accuracy"]
