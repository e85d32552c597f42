"""The training recipe of each net: the settings ``lean train`` uses for an option that is not given.

One table (``RECIPES``) of per-net training defaults, so that the plain command reproduces the figures of
``benchmarks/README.md``: each entry names the benchmark it comes from. "*" holds the settings of every net
without an entry of its own; a net's entry refines it. ``augment: None`` leaves augmentation to the dataset
(random crop and flip for Fashion-MNIST and CIFAR, none for the digits and MNIST).

``lean nets`` lists each net's recipe and ``lean train --help`` shows them with each option. Training methods
keep their own defaults in their config classes (``lean.train.config``, ``lean.compress.config``).

This module imports nothing from lean or NumPy: the command line reads it for its help.
"""

RECIPES = {
    "*": {"epochs": 10, "batch_size": 128, "lr": 0.1, "optimizer": "sgd", "momentum": 0.9, "schedule": "cosine",
          "weight_decay": 5e-4, "augment": None,
          "source": "ResNet-20 on Fashion-MNIST: 93.69% in 15 epochs (benchmarks/accuracy.py)"},
    "lenet5": {"lr": 0.05, "augment": False,
               "source": "LeNet-5 on Fashion-MNIST: 90.99% in 15 epochs (benchmarks/accuracy.py)"},
}


def recipe(net):
    """The recipe of ``net``: the "*" settings refined by the net's own entry; ``source`` says where from."""
    out = dict(RECIPES["*"])
    out.update(RECIPES.get(net, {}))
    return out


def recipe_help(key):
    """How ``--help`` states a recipe setting, e.g. ``0.1 (lenet5: 0.05)``."""
    base = RECIPES["*"][key]
    def text(value):
        return {None: "the dataset's own", True: "on", False: "off"}.get(value, value) \
            if isinstance(value, (bool, type(None))) else str(value)

    special = [f"{net}: {text(spec[key])}" for net, spec in RECIPES.items() if net != "*" and key in spec]
    shown = text(base)
    return shown + (f" ({'; '.join(special)})" if special else "")
