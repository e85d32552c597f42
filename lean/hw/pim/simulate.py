"""A trained model's inference through the functional crossbar: its accuracy next to the digital model's.

The one place ``hw`` runs a model: ``simulate`` imports ``lean.nn`` inside the function, so costing workloads
stays light. The conv and linear products go through ``lean.nn.crossbar.CrossbarProducts`` (im2col per group,
symmetric integer weights and inputs), which calls the Numba kernel ``lean.kernels.crossbar_matmul``.
"""

import numpy as np

from ...errors import HardwareModelError


def simulate(model, images, labels, batch_size: int = 256, **settings) -> dict:
    """Accuracy of ``model`` on ``images`` digitally and with its conv and linear products on the functional
    crossbar (``lean.nn.crossbar.CrossbarProducts``; ``settings`` are ``lean.kernels.crossbar_matmul``'s).

    The one place ``hw`` runs a model: it imports ``lean.nn`` here, so costing workloads stays light.

    Parameters
    ----------
    model : lean.nn.Model
        A trained model (``lean.nn.load_model``).
    images : ndarray
        (n, h, w, c) float32 inputs, normalized as the model was trained.
    labels : ndarray
        (n,) integer labels.
    batch_size : int
        Images per forward pass.
    **settings
        ``xbar_rows``, ``cell_bits``, ``weight_bits``, ``input_bits``, ``dac_bits``, ``adc_bits``, ``signed``,
        ``read_noise``, ``variation``, ``seed``.

    Returns
    -------
    dict
        ``digital_accuracy``, ``crossbar_accuracy``, ``agreement`` (share of images both predict alike),
        ``images`` and the ``settings``.
    """
    check_mappable(model)
    labels = np.asarray(labels)
    digital = model.predict(images, batch_size=batch_size).argmax(axis=1)
    crossbar = _crossbar_predictions(model, images, batch_size, settings)
    return {"digital_accuracy": float((digital == labels).mean()),
            "crossbar_accuracy": float((crossbar == labels).mean()),
            "agreement": float((digital == crossbar).mean()), "images": int(len(labels)), "settings": dict(settings)}


SWEEPABLE = {"adc-bits": "adc_bits", "dac-bits": "dac_bits", "cell-bits": "cell_bits", "xbar": "xbar_rows",
             "noise": "read_noise", "variation": "variation", "adc-range": "adc_range"}


def parse_sweep(spec: str) -> tuple:
    """``"adc-bits=4..10"`` (an integer range, both ends in) or ``"noise=0,0.01,0.02"`` (a list) as (setting name,
    values). Bad specs raise ``ConfigError`` naming what is wrong."""
    from ...errors import ConfigError

    key, sep, values = str(spec).partition("=")
    key = key.strip()
    if not sep or key not in SWEEPABLE:
        raise ConfigError(f"--sweep takes KEY=A..B or KEY=v1,v2 with KEY one of {', '.join(SWEEPABLE)}; got {spec!r}")
    integer = key in ("adc-bits", "dac-bits", "cell-bits", "xbar")
    try:
        if ".." in values:
            lo, hi = (int(v) for v in values.split(".."))
            if hi < lo:
                raise ValueError
            out = list(range(lo, hi + 1))
        else:
            out = [int(v) if integer else float(v) for v in values.split(",")]
    except ValueError:
        raise ConfigError(f"--sweep {key}: cannot read {values!r} (A..B with A <= B integers, or v1,v2,...)") from None
    if not out or len(out) > 64:
        raise ConfigError(f"--sweep {key}: give 1 to 64 values; got {len(out)}")
    return SWEEPABLE[key], out


def sweep(model, images, labels, name: str, values, batch_size: int = 256, **settings) -> dict:
    """``simulate`` at each of ``values`` of the setting ``name`` (the digital model run once).

    Returns
    -------
    dict
        ``digital_accuracy``, ``sweep`` (the setting's name), ``rows`` (value, crossbar_accuracy, agreement),
        ``images`` and the other ``settings``.
    """
    check_mappable(model)
    labels = np.asarray(labels)
    digital = model.predict(images, batch_size=batch_size).argmax(axis=1)
    rows = []
    for value in values:
        crossbar = _crossbar_predictions(model, images, batch_size, dict(settings, **{name: value}))
        rows.append({"value": value, "crossbar_accuracy": float((crossbar == labels).mean()),
                     "agreement": float((digital == crossbar).mean())})
    return {"digital_accuracy": float((digital == labels).mean()), "sweep": name, "rows": rows,
            "images": int(len(labels)), "settings": dict(settings)}


def check_mappable(model) -> None:
    """Refuse a model with a layer that holds weights but is not a conv or linear layer (those the crossbar runs)
    or a batch norm (digital periphery): e.g. E2-Train's LSTM gate controller. One ``HardwareModelError`` naming
    the layer."""
    from ...nn.layers import BatchNorm, Conv2d, Linear

    net = getattr(model, "net", model)
    for name, module in net.named_modules():
        if getattr(module, "params", None) and not isinstance(module, (Conv2d, Linear, BatchNorm)):
            raise HardwareModelError(
                f"layer {name or type(module).__name__} ({type(module).__name__}) holds weights the crossbar "
                "cannot map: lean hw pim --simulate runs conv and linear layers on crossbars and batch norm "
                "digitally")


def _crossbar_predictions(model, images, batch_size, settings):
    from ...nn.crossbar import CrossbarProducts, install, restore

    if settings.get("adc_bits") == 0:
        settings = dict(settings, adc_bits=None)          # 0: an ideal ADC, as the command line says it
    previous = install(model, CrossbarProducts(**settings))
    try:
        return model.predict(images, batch_size=batch_size).argmax(axis=1)
    finally:
        restore(model, previous)
