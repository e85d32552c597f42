"""Optional: lean's layers against PyTorch's on the same weights (skipped when PyTorch is absent)."""

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from lean import kernels  # noqa: E402
from lean.nets import build  # noqa: E402


@pytest.mark.parametrize("c,k,r,stride,padding,groups", [(3, 16, 3, 1, 1, 1), (16, 32, 3, 2, 1, 1),
                                                         (1, 6, 5, 1, 2, 1), (8, 8, 3, 2, 1, 8),
                                                         (8, 12, 3, 1, 1, 4)])
def test_conv_matches_torch(c, k, r, stride, padding, groups):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((3, 11, 9, c)).astype(np.float32)
    w = rng.standard_normal((k, c // groups, r, r)).astype(np.float32)
    tx = torch.tensor(x.transpose(0, 3, 1, 2), requires_grad=True)
    tw = torch.tensor(w, requires_grad=True)
    ty = torch.nn.functional.conv2d(tx, tw, stride=stride, padding=padding, groups=groups)
    y = kernels.conv2d_forward(x, w, None, stride, padding, groups)
    np.testing.assert_allclose(y, ty.detach().numpy().transpose(0, 2, 3, 1), rtol=1e-4, atol=1e-4)
    dy = rng.standard_normal(y.shape).astype(np.float32)
    ty.backward(torch.tensor(dy.transpose(0, 3, 1, 2)))
    dx, dw, _ = kernels.conv2d_backward(x, w, dy, stride, padding, groups)
    np.testing.assert_allclose(dx, tx.grad.numpy().transpose(0, 2, 3, 1), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(dw, tw.grad.numpy(), rtol=1e-4, atol=1e-3)


def test_resnet20_logits_match_a_torch_port():
    import os
    import sys

    sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "benchmarks"))
    import torch_nets

    lean_model = build("resnet20", seed=3)
    tmodel, _ = torch_nets.build("resnet20")
    # copy lean's weights into the PyTorch port, in the order both define them
    tparams = dict(tmodel.named_parameters())
    tbufs = dict(tmodel.named_buffers())
    lean_params = list(lean_model.parameters().values())
    assert len(lean_params) == len(tparams)
    for (name, tp), lp in zip(tparams.items(), lean_params, strict=True):
        assert tuple(tp.shape) == lp.shape, name
        tp.data = torch.tensor(lp)
    lean_bufs = [b for b in lean_model.buffers().values()]
    tbufs = [b for n, b in tbufs.items() if "running" in n]
    for tb, lb in zip(tbufs, lean_bufs, strict=True):
        tb.data = torch.tensor(lb)
    x = np.random.default_rng(1).standard_normal((4, 32, 32, 3)).astype(np.float32)
    tmodel.eval()
    with torch.no_grad():
        expected = tmodel(torch.tensor(x.transpose(0, 3, 1, 2))).numpy()
    np.testing.assert_allclose(lean_model.forward(x), expected, rtol=1e-3, atol=1e-3)
