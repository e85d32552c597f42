"""Input-adaptive inference: each image takes as much of the network as it needs.

- ``dfs``: dynamic fractional skipping (Shen et al., AAAI 2020): per image and residual block, skip or run at a
  bit width a gate picks.
"""

from .dfs import (
    DEFAULT_BITS,
    ChoiceController,
    FractionalBlock,
    add_dfs_gates,
    controller,
    dfs_blocks,
    has_dfs_gates,
    option_costs,
    option_names,
)

__all__ = ["DEFAULT_BITS", "ChoiceController", "FractionalBlock", "add_dfs_gates", "controller", "dfs_blocks",
           "has_dfs_gates", "option_costs", "option_names"]
