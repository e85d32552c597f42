"""Plots a user asks for with ``--plot``: training curves of a checkpoint, energy breakdown of a prediction.

matplotlib is an optional extra (``pip install 'lean[plot]'``); without it each function raises ``ConfigError``
saying how to install it. Figures are written as PNG with the Agg backend (no display needed).
"""

from .errors import ConfigError


def _pyplot():
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise ConfigError("--plot needs matplotlib: pip install 'lean[plot]'") from None
    return plt


def history_curves(history: list[dict], path: str) -> str:
    """Training loss and train/test accuracy per epoch (``history`` as a checkpoint stores it) to ``path``.

    Epochs without a test evaluation (``--eval-every``) are left out of the test curve; epochs whose steps were
    all dropped have no loss. A DFS or DDI run gets a third panel: its computation percentage per epoch (DDI: the
    share of the network's MACs), in training and on the test set.
    """
    if not history:
        raise ConfigError("the checkpoint has no history to plot")
    plt = _pyplot()
    key = "dfs" if any(h.get("dfs") for h in history) else "ddi"
    dynamic = [h for h in history if h.get(key)]
    fig, axes = plt.subplots(1, 3 if dynamic else 2, figsize=(13.5 if dynamic else 9, 3.5))
    ax1, ax2 = axes[0], axes[1]
    trained = [h for h in history if h.get("train_loss") is not None]
    ax1.plot([h["epoch"] for h in trained], [h["train_loss"] for h in trained])
    ax1.set_xlabel("epoch")
    ax1.set_ylabel("training loss")
    ax2.plot([h["epoch"] for h in trained], [100 * h["train_accuracy"] for h in trained], label="train")
    tested = [h for h in history if h.get("test_accuracy") is not None]
    ax2.plot([h["epoch"] for h in tested], [100 * h["test_accuracy"] for h in tested], "o-", label="test")
    ax2.set_xlabel("epoch")
    ax2.set_ylabel("accuracy (%)")
    ax2.legend()
    if dynamic:
        ax3 = axes[2]
        ax3.plot([h["epoch"] for h in dynamic], [100 * h[key]["train_computation"] for h in dynamic],
                 label="train")
        tested = [h for h in dynamic if "test_computation" in h[key]]
        ax3.plot([h["epoch"] for h in tested], [100 * h[key]["test_computation"] for h in tested], "o-",
                 label="test")
        ax3.set_xlabel("epoch")
        ax3.set_ylabel("DFS computation (%)" if key == "dfs" else "DDI: share of the MACs run (%)")
        ax3.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def dfs_choices(choices: dict[str, dict[str, int]], path: str, title: str = "") -> str:
    """Stacked bars: for each DFS block, the share of the images that took each option (skip, bit widths, full)."""
    plt = _pyplot()
    blocks = list(choices)
    options = list(next(iter(choices.values())))
    fig, ax = plt.subplots(figsize=(max(6, 0.45 * len(blocks)), 4))
    bottom = [0.0] * len(blocks)
    for option in options:
        shares = [100 * choices[b][option] / max(sum(choices[b].values()), 1) for b in blocks]
        ax.bar(range(len(blocks)), shares, bottom=bottom, label=option if option in ("skip", "full") else
               f"{option} bits")
        bottom = [b + v for b, v in zip(bottom, shares, strict=True)]
    ax.set_xticks(range(len(blocks)), blocks, rotation=90, fontsize=8)
    ax.set_ylabel("images (%)")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7, bbox_to_anchor=(1.01, 1), loc="upper left")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def budget_curve(curve: dict, path: str, title: str = "") -> str:
    """DDI's accuracy-budget curve (``lean eval --budgets``): accuracy against each budget and against the MACs the
    images used on average, as shares of the full network."""
    plt = _pyplot()
    rows = curve["budgets"]
    full = curve["full_macs"]
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot([r["budget"] for r in rows], [100 * r["accuracy"] for r in rows], "o-", label="against the budget")
    ax.plot([r["macs_mean"] / full for r in rows], [100 * r["accuracy"] for r in rows], "s--",
            label="against the MACs used (mean)")
    ax.set_xlabel("share of the full network's MACs per image")
    ax.set_ylabel("test accuracy (%)")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def energy_breakdown(result: dict, path: str,
                     levels: tuple[str, ...] = ("mac", "rf", "noc", "glb", "dram", "rebuild", "leak"),
                     key: str = "energy_breakdown_pj") -> str:
    """Stacked bars of each layer's energy by memory level (a ``lean.hw.predict`` result; a ``lean hw pim`` result
    with ``key="energy_pj"`` and its components as ``levels``) to ``path``."""
    plt = _pyplot()
    layers = result["layers"]
    unit = result.get("energy_unit", "pJ")
    scale, label = (1e6, "energy (uJ)") if unit == "pJ" else (1e6, f"energy (millions of {unit})")
    fig, ax = plt.subplots(figsize=(max(6, 0.35 * len(layers)), 4))
    bottom = [0.0] * len(layers)
    for level in levels:
        values = [layer[key].get(level, 0.0) / scale for layer in layers]
        ax.bar(range(len(layers)), values, bottom=bottom, label=level)
        bottom = [b + v for b, v in zip(bottom, values, strict=True)]
    ax.set_xticks(range(len(layers)), [layer["name"] for layer in layers], rotation=90, fontsize=7)
    ax.set_ylabel(label)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def accuracy_curve(result: dict, path: str) -> str:
    """Crossbar accuracy against a swept setting (``lean hw pim --simulate --sweep``), the digital accuracy as a
    line, to ``path``."""
    plt = _pyplot()
    rows = result["rows"]
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot([r["value"] for r in rows], [100 * r["crossbar_accuracy"] for r in rows], "o-", label="crossbar")
    ax.axhline(100 * result["digital_accuracy"], color="gray", linestyle="--", label="digital")
    ax.set_xlabel(result["sweep"])
    ax.set_ylabel("test accuracy (%)")
    ax.set_title(f"{result.get('checkpoint', '')}, {result['images']} images", fontsize=9)
    return _save(plt, fig, ax, path)


def pareto_front(result: dict, path: str) -> str:
    """The design search's Pareto front (``lean hw explore``): latency against the share of the budget taken,
    the chosen design marked."""
    plt = _pyplot()
    front = result["front"]
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot([100 * r["budget_share"] for r in front], [1e3 * r["latency_s"] for r in front], "o-", label="front")
    chosen = result["predicted"]
    ax.plot([100 * max(chosen.get(k, 0) / v for k, v in result["budget"].items() if k in chosen)],
            [1e3 * chosen["coarse_latency_s"]], "r*", markersize=12, label="chosen")
    ax.set_xlabel("share of the budget (%)")
    ax.set_ylabel("latency (ms, coarse)")
    ax.set_yscale("log")
    ax.set_title(f"{result['workload']} on {result['target']}", fontsize=9)
    return _save(plt, fig, ax, path)


def _save(plt, fig, ax, path):
    """Legend, layout, PNG to ``path``, figure closed; returns ``path``."""
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
