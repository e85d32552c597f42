"""Model builders, the name -> builder registry and the training recipe of each net.

Every builder takes ``input_shape`` (h, w, c), ``num_classes`` and ``seed`` and returns an initialized
``lean.nn.Model``; ``build(name, ...)`` looks the name up (``lean.nets.registry``); depth-parameterized families
also accept any valid depth in the name (``resnet<6n+2>``, ``preresnet<6n+2 or 9n+2>``). ``lean.nets.recipes``
holds the training settings each net gets by default. Names are imported on first use, so the recipes (which
the command line reads for its help) load without NumPy.
"""

from importlib import import_module

_NAMES = {"NETS": "registry", "build": "registry", "catalog": "registry", "default_input": "registry",
          "RECIPES": "recipes", "recipe": "recipes",
          "lenet5": "builders", "mlp": "builders", "mobilenetv2": "builders", "preresnet": "builders",
          "resnet": "builders", "vgg": "builders"}


def __getattr__(name):
    if name in _NAMES:
        return getattr(import_module(f".{_NAMES[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = list(_NAMES)
