"""Timing of whole training and inference steps on random data, and of kernels against their references
(``lean bench``)."""

import time
from typing import TYPE_CHECKING

import numpy as np

from .errors import ConfigError

if TYPE_CHECKING:  # annotations only: the rooms bench drives are imported when a benchmark runs
    from .nn import Model


def bench_model(mode: str, net: str, *, batch_size: int = 128, input_shape: tuple[int, int, int] = (32, 32, 3),
                num_classes: int = 10, threads: int | None = None, steps: int = 10, warmup: int = 2, seed: int = 0,
                profile: bool = False, precision: str = "float32") -> dict:
    """Median images/s over ``steps`` timed steps after ``warmup`` untimed ones.

    A training step is forward, softmax cross-entropy, backward and an SGD update, as in ``lean train``.
    ``profile=True`` adds per-layer forward/backward medians (``layers``), timed in separate steps.

    Parameters
    ----------
    mode : str
        "train" or "infer".
    net : str
        A registered net name (``lean nets``).
    batch_size : int
        Images per step, random normal (batch_size, h, w, c) float32 inputs.
    input_shape : tuple of int
        (h, w, c), channels-last.
    num_classes : int
        Outputs of the net.
    threads : int or None
        Threads for lean's kernels (None: as they are).
    steps, warmup : int
        Timed steps, and steps run before timing (the first compiles kernels).
    seed : int
        Seed of the weights and the random batch.
    profile : bool
        Also time each leaf layer (``profile_layers``).
    precision : str
        "float32", or "bf16": the convolutions' products as ``lean train --precision bf16`` runs them.

    Returns
    -------
    dict
        ``mode``, ``net``, ``batch_size``, ``input_shape``, ``threads``, ``steps``, ``step_seconds_median``,
        ``images_per_second``, ``first_step_seconds``, ``precision``, and ``layers`` (``profile_layers``) when profiled.

    Raises
    ------
    ConfigError
        ``mode`` is neither "train" nor "infer".
    """
    from . import kernels
    from .nets import build
    from .nn import SGD, softmax_cross_entropy

    if mode not in ("train", "infer"):
        raise ConfigError(f"mode must be 'train' or 'infer'; got {mode!r}")
    if precision not in kernels.conv.PRECISIONS:
        raise ConfigError(f"precision must be one of {', '.join(kernels.conv.PRECISIONS)}; got {precision!r}")
    kernels.ensure_configured()  # lean's threading, unless the program configured it itself
    if threads is not None:
        kernels.set_threads(threads)
    model = build(net, input_shape=input_shape, num_classes=num_classes, seed=seed)
    if precision == "bf16":  # as lean train --precision bf16 (lean.train.precision) installs it
        from .nn import Conv2d
        from .nn.hooks import Bfloat16Products

        for layer in model.net.modules():
            if isinstance(layer, Conv2d):
                layer.set_operand_hook(Bfloat16Products())
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
    layers = profile_layers(model, x, y, steps, train=mode == "train") if profile else None
    for _ in range(max(0, warmup - 1)):
        step()
    times = []
    for _ in range(steps):
        t0 = time.perf_counter()
        step()
        times.append(time.perf_counter() - t0)
    med = float(np.median(times))
    return {"mode": mode, "net": net, "batch_size": batch_size, "input_shape": list(input_shape),
            "threads": kernels.get_threads(), "steps": steps, "precision": precision, "step_seconds_median": med,
            "images_per_second": batch_size / med, "first_step_seconds": first,
            **({"layers": layers} if layers is not None else {})}


def profile_layers(model: "Model", x: np.ndarray, y: np.ndarray, steps: int = 5, train: bool = True) -> list[dict]:
    """Median forward and backward milliseconds of every leaf layer over ``steps`` training steps (``train``) or
    inference passes.

    Returns a list of dicts (name, type, kernel, forward_ms, backward_ms) in execution order. Timers wrap each leaf's
    methods, and at inference the fused convolutions (``lean.nn.fusion.conv_forward``), for the duration of the
    call only. A layer fused into the convolution before it shows kernel "fused" and no time of its own.

    Parameters
    ----------
    model : Model
        The model to time (its weights are not updated).
    x : np.ndarray
        (n, h, w, c) float32 input batch, channels-last.
    y : np.ndarray
        (n,) integer labels.
    steps : int
        Timed steps; one more is run first and not counted.
    train : bool
        Time training steps (forward, loss, backward); else inference passes (backward_ms is 0).

    Returns
    -------
    list of dict
        One per leaf layer in ``named_modules`` order: ``name``, ``type``, ``kernel`` (``layer_kernel``),
        ``forward_ms``, ``backward_ms``.
    """
    from .nn import fusion, softmax_cross_entropy

    leaves = [(name, m) for name, m in model.net.named_modules() if not m.children()]
    times = {name: {"forward": [], "backward": []} for name, _ in leaves}
    by_id = {id(m): name for name, m in leaves}
    originals = []

    def timed(fn, sink_of):
        def call(*args, **kwargs):
            t0 = time.perf_counter()
            out = fn(*args, **kwargs)
            sink_of(args).append(time.perf_counter() - t0)
            return out
        return call

    for name, m in leaves:
        originals.append((m, "forward", m.forward))
        originals.append((m, "backward", m.backward))
        m.forward = timed(m.forward, lambda args, name=name: times[name]["forward"])
        m.backward = timed(m.backward, lambda args, name=name: times[name]["backward"])
        if hasattr(m, "forward_train_residual"):  # a block's last batch norm, which also adds the shortcut
            originals.append((m, "forward_train_residual", m.forward_train_residual))
            m.forward_train_residual = timed(m.forward_train_residual,
                                             lambda args, name=name: times[name]["forward"])
    fused_conv = fusion.conv_forward
    fusion.conv_forward = timed(fused_conv, lambda args: times[by_id[id(args[0])]]["forward"])
    try:
        for _ in range(steps + 1):
            if not train:
                model.forward(x, train=False)
                continue
            model.zero_grad()
            _, d = softmax_cross_entropy(model.forward(x, train=True), y)
            model.backward(d)
    finally:
        fusion.conv_forward = fused_conv
        for m, attribute, original in originals:
            setattr(m, attribute, original)

    def median_ms(samples):
        return 1e3 * float(np.median(samples[1:])) if len(samples) > 1 else 0.0

    return [{"name": name, "type": type(m).__name__, "kernel": layer_kernel(m),
             "forward_ms": median_ms(times[name]["forward"]), "backward_ms": median_ms(times[name]["backward"])}
            for name, m in leaves]


def layer_kernel(module) -> str:
    """Which kernel a layer ran last: a conv's ``conv2d_method`` (winograd, tiled, im2col, direct, depthwise), a
    batch norm's ``batchnorm_method`` (tiled, rows), "fused" for a layer that inference fusion folded into the conv
    before it (``lean.nn.fusion``); empty for the others."""
    return module.last_method or ""


def fma_peak_gflops(threads: int = 1, seconds: float = 0.3) -> float:
    """This machine's float32 multiply-add peak, measured: ``threads`` threads each run 12 independent chains of
    vector FMAs (``simd.tile_fmadd`` on a 12-vector tile, at the vector width lean's kernels use here) for about
    ``seconds``; GFLOP/s counts a multiply-add as 2. The bar the speed benchmarks divide by."""
    from concurrent.futures import ThreadPoolExecutor

    from .kernels import simd

    width = simd.SIMD_WIDTH or 4
    kernel = simd.fma_chains
    shape = (simd.token(width), simd.token(12), simd.token(1))

    def run(steps):
        kernel(np.full(12 * width, 0.5, np.float32), steps, *shape)

    run(10)
    steps = 1000
    while True:
        t0 = time.perf_counter()
        run(steps)
        if time.perf_counter() - t0 > seconds / 4:
            break
        steps *= 4
    flops = 2 * 12 * width * steps
    with ThreadPoolExecutor(max_workers=threads) as pool:
        t0 = time.perf_counter()
        list(pool.map(lambda _: run(steps), range(threads)))
        elapsed = time.perf_counter() - t0
    return threads * flops / elapsed / 1e9


def _median_ms(fn, repeats=7):
    fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return 1e3 * float(np.median(times))


KERNELS = ("pow2-matmul", "kmeans-assign", "int8-conv")


def bench_kernel(name: str, *, m: int = 2048, k: int = 2048, n: int = 256, density: float = 0.1,
                 samples: int = 1_000_000, dims: int = 1, clusters: int = 16, batch_size: int = 128,
                 input_shape: tuple[int, int, int] = (32, 32, 16), out_channels: int = 16, kernel_size: int = 3,
                 repeats: int = 7, seed: int = 0) -> dict:
    """Time one of lean's kernels and its references in one run; returns ``lean_ms`` and ``reference_ms``.

    pow2-matmul: (m x k) power-of-two sparse @ (k x n) dense vs scipy.sparse CSR (float32) at the same
    sparsity and dense float32 BLAS (1 thread, as lean runs BLAS, and all threads).
    kmeans-assign: ``samples`` points of ``dims`` dims to ``clusters`` centres vs scipy.cluster.vq.vq.
    int8-conv: int8 conv (exact integer sums, rescale; ``auto`` method) vs lean's float32 conv on the same shapes;
    ``int_kernel_ms`` is the integer-only kernel.

    Parameters
    ----------
    name : str
        "pow2-matmul", "kmeans-assign" or "int8-conv" (``KERNELS``).
    m, k, n, density
        pow2-matmul: the (m, k) sparse operand, its fraction of non-zeros in (0, 1], and the (k, n) dense one.
    samples, dims, clusters
        kmeans-assign: (samples, dims) float32 points and (clusters, dims) centres.
    batch_size, input_shape, out_channels, kernel_size
        int8-conv: input (batch_size, h, w, c) int8 with ``input_shape`` = (h, w, c), weight
        (out_channels, c, kernel_size, kernel_size) int8, stride 1, same padding.
    repeats : int
        Timed runs per median (after one untimed run).
    seed : int
        Seed of the random operands.

    Returns
    -------
    dict
        ``kernel``, the shape settings used, ``threads``, ``lean_ms`` (median milliseconds) and ``reference_ms``
        (reference name -> median milliseconds).

    Raises
    ------
    ConfigError
        An unknown ``name``, or a ``density`` outside (0, 1].
    """
    from threadpoolctl import threadpool_limits

    from . import kernels
    from .kernels.intconv import auto_int8_method

    rng = np.random.default_rng(seed)
    if name == "pow2-matmul":
        import scipy.sparse as sp

        if not 0 < density <= 1:
            raise ConfigError(f"density must be in (0, 1]; got {density}")
        mask = rng.random((m, k)) < density
        exps = rng.integers(-8, 4, (m, k))
        values = np.where(mask, np.where(rng.random((m, k)) < 0.5, -1.0, 1.0) * np.exp2(exps), 0.0)
        a = sp.csr_matrix(values.astype(np.float32))
        a.sort_indices()
        codes = kernels.encode_pow2(np.sign(a.data), np.log2(np.abs(a.data)).astype(int), -10)
        x = rng.standard_normal((k, n)).astype(np.float32)
        dense = a.toarray()
        lean_ms = _median_ms(lambda: kernels.pow2_csr_matmul(a.indptr, a.indices, codes, -10, x), repeats)
        refs = {"scipy_csr": _median_ms(lambda: a @ x, repeats),
                "dense_blas_1_thread": _median_ms(lambda: dense @ x, repeats)}
        with threadpool_limits(limits=kernels.get_threads(), user_api="blas"):
            refs["dense_blas"] = _median_ms(lambda: dense @ x, repeats)
        shape = {"m": m, "k": k, "n": n, "density": density}
    elif name == "kmeans-assign":
        from scipy.cluster.vq import vq

        x = rng.standard_normal((samples, dims)).astype(np.float32)
        c = rng.standard_normal((clusters, dims)).astype(np.float32)
        lean_ms = _median_ms(lambda: kernels.kmeans_assign(x, c), repeats)
        refs = {"scipy_vq": _median_ms(lambda: vq(x, c), repeats)}
        shape = {"samples": samples, "dims": dims, "clusters": clusters}
    elif name == "int8-conv":
        h, w, c = input_shape
        xq = rng.integers(-127, 128, (batch_size, h, w, c)).astype(np.int8)
        wq = rng.integers(-127, 128, (out_channels, c, kernel_size, kernel_size)).astype(np.int8)
        xf, wf = xq.astype(np.float32), wq.astype(np.float32)
        pad = kernel_size // 2
        lean_ms = _median_ms(lambda: kernels.int8_conv2d(xq, 0.01, wq, 0.01, 1, pad), repeats)
        refs = {"float32_conv": _median_ms(lambda: kernels.conv2d_forward(xf, wf, None, 1, pad), repeats)}
        shape = {"batch_size": batch_size, "input_shape": list(input_shape), "out_channels": out_channels,
                 "kernel_size": kernel_size,
                 "method": auto_int8_method(kernel_size ** 2 * c),
                 "int_kernel_ms": _median_ms(lambda: kernels.int8_conv2d(xq, 0.01, wq, 0.01, 1, pad, method="int"),
                                             repeats)}
    else:
        raise ConfigError(f"unknown kernel {name!r}; choose one of: {', '.join(KERNELS)}")
    return {"kernel": name, **shape, "threads": kernels.get_threads(), "lean_ms": lean_ms, "reference_ms": refs}
