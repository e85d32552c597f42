"""Model builders and the name -> builder registry.

Every builder takes ``input_shape`` (h, w, c), ``num_classes`` and ``seed`` and returns an initialized
``lean.nn.Model``. ``build(name, ...)`` looks the name up; depth-parameterized families also accept any valid
depth in the name (``resnet<6n+2>``, ``preresnet<6n+2 or 9n+2>``).
"""

import inspect
import re
from functools import partial

from .builders import lenet5, mlp, mobilenetv2, preresnet, resnet, vgg

NETS = {
    "mlp": mlp,
    "lenet5": lenet5,
    "vgg11": partial(vgg, depth=11),
    "vgg16": partial(vgg, depth=16),
    **{f"resnet{d}": partial(resnet, depth=d) for d in (20, 32, 44, 56, 74, 110)},
    **{f"preresnet{d}": partial(preresnet, depth=d) for d in (20, 56, 110, 164)},
    "mobilenetv2": mobilenetv2,
}

_DEPTH_FAMILIES = {"resnet": resnet, "preresnet": preresnet}


def build(name, *, input_shape=(32, 32, 3), num_classes=10, seed=0, **options):
    """Build the network called ``name``; unknown names raise ValueError listing the known ones."""
    if name in NETS:
        builder, args = NETS[name], {}
    else:
        match = re.fullmatch(r"(resnet|preresnet)(\d+)", name or "")
        if not match:
            raise ValueError(f"unknown net {name!r}; known: {', '.join(NETS)} (or resnet<depth>, preresnet<depth>)")
        builder, args = _DEPTH_FAMILIES[match.group(1)], {"depth": int(match.group(2))}
    accepted = inspect.signature(builder).parameters
    unknown = sorted(set(options) - set(accepted))
    if unknown:
        raise ValueError(f"net {name} has no option {', '.join(unknown)}")
    model = builder(input_shape=input_shape, num_classes=num_classes, seed=seed, **args, **options)
    model.name = name
    return model


__all__ = ["NETS", "build", "lenet5", "mlp", "mobilenetv2", "preresnet", "resnet", "vgg"]
