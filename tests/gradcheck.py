"""Central-difference gradient checks in float64."""

import numpy as np


def to_float64(module):
    """Switch every parameter and gradient of a module tree to float64 in place (for gradient checks)."""
    for m in module.modules():
        for k in list(m.params):
            m.params[k] = m.params[k].astype(np.float64)
            m.grads[k] = np.zeros_like(m.params[k])
    return module


def check_module(module, x, *, train=True, eps=1e-6, rtol=1e-5, atol=1e-7, samples=25, seed=0, before=None):
    """Compare ``backward`` with central differences of L = sum(forward(x) * w) for a random w.

    ``before()`` runs before every forward (e.g. to reset a random stream so dropout draws the same mask).
    Checks dx at sampled coordinates and every parameter at sampled coordinates.
    """
    rng = np.random.default_rng(seed)
    x = np.asarray(x, np.float64)
    before = before or (lambda: None)

    def loss(inp):
        before()
        return float((module.forward(inp, train) * weights).sum())

    before()
    y = module.forward(x, train)
    weights = rng.standard_normal(y.shape)
    module.zero_grad()
    dx = module.backward(weights.copy())

    def numeric(arr, idx):
        old = arr[idx]
        arr[idx] = old + eps
        up = loss(x_state["x"])
        arr[idx] = old - eps
        down = loss(x_state["x"])
        arr[idx] = old
        return (up - down) / (2 * eps)

    x_state = {"x": x.copy()}
    flat = x_state["x"].reshape(-1)
    for i in rng.choice(flat.size, size=min(samples, flat.size), replace=False):
        idx = np.unravel_index(i, x.shape)
        num = numeric(x_state["x"], idx)
        np.testing.assert_allclose(dx[idx], num, rtol=rtol, atol=atol, err_msg=f"dx at {idx}")
    for m in module.modules():
        for name, p in m.params.items():
            for i in rng.choice(p.size, size=min(samples, p.size), replace=False):
                idx = np.unravel_index(i, p.shape)
                num = numeric(p, idx)
                np.testing.assert_allclose(m.grads[name][idx], num, rtol=rtol, atol=atol,
                                           err_msg=f"{type(m).__name__}.{name} at {idx}")


def central_difference(loss, array, idx, eps=1e-6):
    """d loss() / d array[idx] by central differences (the array is restored)."""
    old = array[idx]
    array[idx] = old + eps
    up = loss()
    array[idx] = old - eps
    down = loss()
    array[idx] = old
    return (up - down) / (2 * eps)
