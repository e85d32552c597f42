"""Input-adaptive inference: each image takes as much of the network as it needs.

- ``dfs``: dynamic fractional skipping (Shen et al., AAAI 2020): per image and residual block, skip or run at a
  bit width a gate picks (``add_dfs_gates``, ``FractionalBlock``, ``ChoiceController``, the training method
  ``FractionalSkipping``);
- ``ddi``: dual dynamic inference (Wang et al., IEEE JSTSP 2020): per image, channel-and-layer gates on every
  residual block or dense layer and early exits, with budgeted halting (``add_ddi_gates``, ``ChannelGatedBlock``,
  ``ExitHead``, ``DDIController``, ``budgeted_predict``, the training method ``DualDynamicInference``);
- ``config``: ``DFSConfig`` and ``DDIConfig``, the settings of ``lean train --dfs`` and ``--ddi``.

Names are imported on first use, so ``lean.dynamic.config`` (which the command line reads for its options) loads
without NumPy.
"""

from importlib import import_module

_NAMES = {
    "DEFAULT_BITS": "dfs", "ChoiceController": "dfs", "FractionalBlock": "dfs", "FractionalSkipping": "dfs",
    "add_dfs_gates": "dfs", "controller": "dfs", "dfs_blocks": "dfs", "has_dfs_gates": "dfs",
    "option_costs": "dfs", "option_names": "dfs", "computation_of": "dfs",
    "add_ddi_gates": "ddi", "ChannelGatedBlock": "ddi", "ChannelGate": "ddi", "ExitHead": "ddi",
    "DDIController": "ddi", "DualDynamicInference": "ddi", "HaltingPlan": "ddi", "budgeted_predict": "ddi",
    "evaluate_budgets": "ddi", "ddi_blocks": "ddi", "exit_heads": "ddi", "has_ddi_gates": "ddi",
    "DFSConfig": "config", "DDIConfig": "config",
}


def __getattr__(name):
    if name in _NAMES:
        return getattr(import_module(f".{_NAMES[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = list(_NAMES)
