"""The name -> builder registry of the nets.

Every builder takes ``input_shape`` (h, w, c), ``num_classes`` and ``seed`` and returns an initialized
``lean.nn.Model``. ``build(name, ...)`` looks the name up; depth-parameterized families also accept any valid
depth in the name (``resnet<6n+2>``, ``preresnet<6n+2 or 9n+2>``).
"""

import inspect
import re
from functools import partial

from ..errors import ConfigError
from ..nn import Model
from .builders import densenet, lenet5, mlp, mobilenetv2, preresnet, resnet, vgg
from .recipes import recipe

NETS = {
    "mlp": mlp,
    "lenet5": lenet5,
    "vgg11": partial(vgg, depth=11),
    "vgg16": partial(vgg, depth=16),
    **{f"resnet{d}": partial(resnet, depth=d) for d in (20, 32, 44, 56, 74, 110)},
    **{f"preresnet{d}": partial(preresnet, depth=d) for d in (20, 56, 110, 164)},
    "densenet40": partial(densenet, depth=40),
    "densenetbc100": partial(densenet, depth=100, bottleneck=True, compression=0.5),
    "mobilenetv2": mobilenetv2,
}

_DEPTH_FAMILIES = {"resnet": resnet, "preresnet": preresnet, "densenet": densenet,
                   "densenetbc": partial(densenet, bottleneck=True, compression=0.5)}


def build(name: str, *, input_shape: tuple[int, int, int] = (32, 32, 3), num_classes: int = 10, seed: int = 0,
          **options) -> Model:
    """Build the network called ``name`` for ``input_shape`` (h, w, c) and ``num_classes``; returns an
    initialized ``lean.nn.Model``. Unknown names and options raise ``ConfigError`` listing the known ones.

    Parameters
    ----------
    name : str
        A key of ``NETS``, or ``resnet<depth>`` / ``preresnet<depth>`` for any valid depth.
    input_shape : tuple of int
        (h, w, c) of one image.
    num_classes : int
        Outputs of the classifier.
    seed : int
        Seed of the initialization.
    **options
        The builder's own keyword arguments (``width``, ``shortcut``, ``hidden``, ...).

    Returns
    -------
    Model
        Named ``name``; maps (n, h, w, c) images to (n, num_classes) logits.
    """
    if name in NETS:
        builder, args = NETS[name], {}
    else:
        match = re.fullmatch(r"(resnet|preresnet|densenetbc|densenet)(\d+)", name or "")
        if not match:
            raise ConfigError(f"unknown net {name!r}; known: {', '.join(NETS)} (or resnet<depth>, preresnet<depth>, "
                              "densenet<depth>, densenetbc<depth>)")
        builder, args = _DEPTH_FAMILIES[match.group(1)], {"depth": int(match.group(2))}
    accepted = inspect.signature(builder).parameters
    unknown = sorted(set(options) - set(accepted))
    if unknown:
        raise ConfigError(f"net {name} has no option {', '.join(unknown)}")
    model = builder(input_shape=input_shape, num_classes=num_classes, seed=seed, **args, **options)
    model.name = name
    return model


def default_input(name: str) -> tuple[int, int, int]:
    """The input shape (h, w, c) a net is listed and costed with: 28x28x1 for mlp and lenet5, else 32x32x3."""
    return (28, 28, 1) if name in ("mlp", "lenet5") else (32, 32, 3)


def catalog() -> list[dict]:
    """Every named net (``lean nets``): parameter count at its default input and 10 classes, and its training
    recipe (``lean.nets.recipes``).

    One dict per entry of ``NETS``: ``name``, ``parameters``, ``input_shape`` (list), ``recipe`` (settings),
    ``recipe_source``.
    """
    rows = []
    for name in NETS:
        shape = default_input(name)
        settings = recipe(name)
        rows.append({"name": name, "parameters": build(name, input_shape=shape, num_classes=10).num_parameters(),
                     "input_shape": list(shape), "recipe": {k: v for k, v in settings.items() if k != "source"},
                     "recipe_source": settings["source"]})
    return rows


__all__ = ["NETS", "build", "catalog", "default_input", "densenet", "lenet5", "mlp", "mobilenetv2", "preresnet",
           "resnet", "vgg"]
