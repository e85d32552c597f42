"""Timing of whole training and inference steps on random data (``lean bench``)."""

import time

import numpy as np


def bench_model(mode, net, *, batch_size=128, input_shape=(32, 32, 3), num_classes=10, threads=None, steps=10,
                warmup=2, seed=0, profile=False):
    """Median images/s over ``steps`` timed steps after ``warmup`` untimed ones.

    A training step is forward, softmax cross-entropy, backward and an SGD update, as in ``lean train``.
    ``profile=True`` adds per-layer forward/backward medians (``layers``), timed in separate steps.
    """
    from . import kernels
    from .nets import build
    from .nn import SGD, softmax_cross_entropy

    if mode not in ("train", "infer"):
        raise ValueError(f"mode must be 'train' or 'infer'; got {mode!r}")
    if threads is not None:
        kernels.set_threads(threads)
    kernels.keep_freed_memory()
    model = build(net, input_shape=input_shape, num_classes=num_classes, seed=seed)
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((batch_size, *input_shape)).astype(np.float32)
    y = rng.integers(0, num_classes, batch_size)
    opt = SGD(model.parameters(), model.gradients(), momentum=0.9, weight_decay=5e-4)

    def step():
        if mode == "infer":
            model.forward(x, train=False)
            return
        model.zero_grad()
        logits = model.forward(x, train=True)
        _, d = softmax_cross_entropy(logits, y)
        model.backward(d)
        opt.step(0.01)

    t0 = time.perf_counter()
    step()
    first = time.perf_counter() - t0
    layers = profile_layers(model, x, y, steps) if (profile and mode == "train") else None
    for _ in range(max(0, warmup - 1)):
        step()
    times = []
    for _ in range(steps):
        t0 = time.perf_counter()
        step()
        times.append(time.perf_counter() - t0)
    med = float(np.median(times))
    return {"mode": mode, "net": net, "batch_size": batch_size, "input_shape": list(input_shape),
            "threads": kernels.get_threads(), "steps": steps, "step_seconds_median": med,
            "images_per_second": batch_size / med, "first_step_seconds": first,
            **({"layers": layers} if layers is not None else {})}


def profile_layers(model, x, y, steps=5):
    """Median forward and backward milliseconds of every leaf layer over ``steps`` training steps.

    Returns a list of dicts (name, type, forward_ms, backward_ms) in execution order. Timers wrap each leaf's
    methods for the duration of the call only.
    """
    from .nn import softmax_cross_entropy

    leaves = [(name, m) for name, m in model.net.named_modules() if not m.children()]
    times = {name: {"forward": [], "backward": []} for name, _ in leaves}
    originals = []
    for name, m in leaves:
        originals.append((m, m.forward, m.backward))

        def timed(fn, sink):
            def call(*args, **kwargs):
                t0 = time.perf_counter()
                out = fn(*args, **kwargs)
                sink.append(time.perf_counter() - t0)
                return out
            return call

        m.forward = timed(m.forward, times[name]["forward"])
        m.backward = timed(m.backward, times[name]["backward"])
    try:
        for _ in range(steps + 1):
            model.zero_grad()
            _, d = softmax_cross_entropy(model.forward(x, train=True), y)
            model.backward(d)
    finally:
        for m, fwd, bwd in originals:
            m.forward, m.backward = fwd, bwd
    rows = []
    for name, m in leaves:
        t = times[name]
        rows.append({"name": name, "type": type(m).__name__,
                     "forward_ms": 1e3 * float(np.median(t["forward"][1:])),
                     "backward_ms": 1e3 * float(np.median(t["backward"][1:]))})
    return rows
