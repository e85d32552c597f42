"""The training recipe of each net: the settings ``lean train`` uses for an option that is not given.

One table (``RECIPES``) of training defaults, so that the plain command reproduces the figures of
``benchmarks/README.md``; each entry names the benchmark it comes from. Keys, from the most general to the most
particular, each refining the one before: ``"*"`` (every run), ``"@DATA"`` (every net on a dataset),
``"NET"`` (a net on any dataset), ``"NET@DATA"`` (a net on one dataset). ``augment: None`` leaves augmentation
to the dataset (``lean data`` says which: random crop and flip for Fashion-MNIST and CIFAR, none for the digits,
MNIST and a user's file).

``lean nets`` lists each net's recipe and ``lean train --help`` shows them with each option. Training methods
keep their own defaults in their config classes (``lean.train.config``, ``lean.compress.config``).

This module imports nothing from lean or NumPy: the command line reads it for its help.
"""

RECIPES = {
    "*": {"epochs": 10, "batch_size": 128, "lr": 0.1, "optimizer": "sgd", "momentum": 0.9, "schedule": "cosine",
          "weight_decay": 5e-4, "augment": None,
          "source": "every net without its own entry; with these settings ResNet-20 gave 93.69% on Fashion-MNIST "
                    "in 15 epochs (benchmarks/accuracy.py)"},
    "lenet5": {"lr": 0.05, "augment": False,
               "source": "LeNet-5 on Fashion-MNIST: 90.99% in 15 epochs (benchmarks/accuracy.py)"},
}


def recipe(net: str, data: str | None = None) -> dict:
    """The recipe of ``net`` on ``data``: "*", refined by "@DATA", "NET" and "NET@DATA" (see the module
    docstring); ``source`` says where the most particular entry comes from."""
    out = dict(RECIPES["*"])
    for key in (f"@{data}" if data else None, net, f"{net}@{data}" if data else None):
        out.update(RECIPES.get(key, {}) if key else {})
    return out


def _text(value) -> str:
    if isinstance(value, bool) or value is None:
        return {None: "the dataset's own", True: "on", False: "off"}[value]
    return str(value)


def recipe_help(key: str) -> str:
    """How ``--help`` states a recipe setting: its general value and the entries that change it, e.g.
    ``0.1 (lenet5: 0.05)``."""
    special = [f"{name}: {_text(spec[key])}" for name, spec in RECIPES.items() if name != "*" and key in spec]
    return _text(RECIPES["*"][key]) + (f" ({'; '.join(special)})" if special else "")
