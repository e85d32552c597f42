"""Compress a trained checkpoint: apply a method to its layers, re-train, measure, report and save.

``compress(method, checkpoint, out, ...)`` is what ``lean compress`` runs:

1. load the model and its data; test accuracy before;
2. ``smartexchange``: decompose every conv and linear weight (``smartexchange.decompose_layer``) and put a
   ``SmartExchangeWeight`` in its place; ``kmeans``: optionally re-train with the spectrally relaxed k-means
   regularizer (``KMeansRegularizer``), then cluster every conv layer's kernel rows (``kmeans.cluster_rows``)
   into a ``SharedWeight``; ``quantize``: ``QuantizedWeight`` on every conv and linear weight, and optionally
   fake-quantized layer inputs;
3. test accuracy straight after, then re-train (fine-tune) the compressed form for ``retrain_epochs`` with the
   straight-through gradients of ``lean.nn.compressed``; test accuracy after;
4. save the compressed checkpoint (compact arrays) and return the report: per layer parameters, storage bits,
   ratio against float32, sparsity; totals over everything needed to run the model.
"""

import time
from pathlib import Path

import numpy as np

from .. import kernels
from ..data import load as load_data
from ..errors import CheckpointError, ConfigError
from ..hw.bitcost import workload_cost
from ..hw.workload import from_model
from ..nn import Conv2d, Linear
from ..nn.checkpoint import Checkpoint, claim_output
from ..nn.checkpoint import load as load_checkpoint
from ..nn.checkpoint import save as save_checkpoint
from ..nn.compressed import QuantizedWeight, SharedWeight, SmartExchangeWeight
from ..train import TrainConfig, Trainer, accuracy
from ..train.methods import TrainingMethod
from . import kmeans as km
from . import smartexchange as se

METHODS = ("smartexchange", "kmeans", "quantize")


def _weighted_layers(model, convs_only=False):
    for name, layer in model.net.named_modules():
        if isinstance(layer, Conv2d) or (isinstance(layer, Linear) and not convs_only):
            yield name, layer


def apply_smartexchange(model, *, theta=5e-3, max_exponent=5, exponent_bits=4, basis_bits=8):
    for _, layer in _weighted_layers(model):
        w = layer.weight()
        decomposition = se.decompose_layer(w, theta, max_exponent, exponent_bits, basis_bits)
        layer.set_form(SmartExchangeWeight(w.shape, se.BLOCK_ROWS, max_exponent, exponent_bits, basis_bits)
                       .set_blocks(decomposition.blocks))


def _clusters_for(names, clusters):
    if isinstance(clusters, (list, tuple)):
        if len(clusters) != len(names):
            raise ConfigError(f"--clusters lists {len(clusters)} values but the model has {len(names)} conv layers")
        return dict(zip(names, clusters, strict=True))
    return {n: clusters for n in names}


def apply_kmeans(model, *, clusters=16, sparsity=0.0, seed=0):
    layers = list(_weighted_layers(model, convs_only=True))
    per_layer = _clusters_for([n for n, _ in layers], clusters)
    for name, layer in layers:
        w = layer.weight()
        k = min(int(per_layer[name]), km.kernel_rows(w).shape[0])
        shared = km.cluster_rows(w, k, sparsity=sparsity, seed=seed)
        layer.set_form(SharedWeight(w.shape, k).set_clusters(shared.centres, shared.labels))


def apply_quantize(model, *, weight_bits=8, activation_bits=None, per_channel=False, scheme="symmetric"):
    for _, layer in _weighted_layers(model):
        w = layer.weight()
        layer.set_form(QuantizedWeight(w.shape, weight_bits, per_channel, scheme).set_weight(w))
        if activation_bits is not None:
            layer.set_input_bits(activation_bits)


class KMeansRegularizer(TrainingMethod):
    """The spectrally relaxed k-means regularizer of deep k-means, as a training hook.

    Adds lambda * W (I - F F^T) to each conv weight's gradient, with W the (s, N) matrix of kernel rows.
    ``form="paper"``: F = the top-K right singular vectors of W, refreshed every ``refresh_epochs`` epochs (with
    s <= K rows these span W's row space, so the term is zero at each refresh and only resists drift).
    ``form="indicator"``: F = the normalized cluster-indicator matrix of a k-means assignment refreshed the same
    way; W F F^T puts every column at its cluster mean, so the term pulls each kernel row toward its centre.
    """

    def __init__(self, model, clusters, lam=1e-4, form="paper", refresh_epochs=5, seed=0):
        if form not in ("paper", "indicator"):
            raise ConfigError(f"regularizer form must be 'paper' or 'indicator'; got {form!r}")
        self.layers = list(_weighted_layers(model, convs_only=True))
        self.clusters = _clusters_for([n for n, _ in self.layers], clusters)
        self.lam, self.form, self.refresh_epochs, self.seed = float(lam), form, int(refresh_epochs), seed
        self.state = {}

    def _refresh(self):
        for name, layer in self.layers:
            rows = km.kernel_rows(layer.params["weight"]).astype(np.float64)  # (N, s) = W^T
            k = min(int(self.clusters[name]), rows.shape[0])
            if self.form == "paper":
                _, _, vt = np.linalg.svd(rows.T, full_matrices=False)        # W = U S V^T, V (N, s)
                self.state[name] = vt[:k].T                                   # top-k right singular vectors
            else:
                self.state[name] = km.cluster_rows(layer.params["weight"], k, seed=self.seed, max_iter=20).labels

    def on_epoch_start(self, trainer):
        if trainer.epoch % self.refresh_epochs == 0 or not self.state:
            self._refresh()

    def before_update(self, trainer):
        for name, layer in self.layers:
            w = layer.params["weight"]
            rows = km.kernel_rows(w).astype(np.float64)                       # W^T, (N, s)
            if self.form == "paper":
                v = self.state[name]
                projected = v @ (v.T @ rows)                                  # (F F^T W^T)
            else:
                labels = self.state[name]
                k = int(labels.max()) + 1
                sums = kernels.segment_sum(rows, labels, k)
                counts = np.bincount(labels, minlength=k)[:, None]
                projected = (sums / np.maximum(counts, 1))[labels]
            layer.grads["weight"] += (self.lam * (rows - projected)).reshape(w.shape).astype(np.float32)


def sharing_energy(model):
    """Deep k-means' energy metric (``lean.hw.bitcost``, 16-bit operands) of the model dense and as shared."""
    workload = from_model(model, w_bits=16, a_bits=16)
    workload = type(workload)(workload.name, tuple(
        layer.__class__(**{**layer.to_dict(), "w_bits": 16}) for layer in workload.layers))
    shared = {name: layer.form.clusters for name, layer in _weighted_layers(model, convs_only=True)
              if isinstance(layer.form, SharedWeight)}
    dense, after = workload_cost(workload), workload_cost(workload, shared)
    return {"dense": dense.to_dict(), "shared": after.to_dict(), "saving": dense.total_fa / after.total_fa}


def layer_report(model):
    rows = []
    for name, layer in _weighted_layers(model):
        w = layer.weight()
        form = layer.form
        bits = form.storage_bits() if form is not None else w.size * 32
        rows.append({"layer": name, "kind": "conv" if isinstance(layer, Conv2d) else "fc",
                     "parameters": int(w.size), "storage_bits": int(bits),
                     "compression_ratio": w.size * 32 / bits if bits else float("inf"),
                     "sparsity": float(1.0 - np.count_nonzero(w) / w.size),
                     "form": type(form).__name__ if form is not None else "dense"})
    return rows


def compress(method, checkpoint, out, *, force=False, data=None, retrain_epochs=0, lr=0.01, batch_size=128, seed=0,
             train_limit=None, regularize_epochs=0, regularizer="paper", reg_lambda=1e-4, on_epoch=None,
             **options) -> dict:
    """Run ``method`` on ``checkpoint`` and write ``out``; returns the report dict (see the module docstring).

    ``out`` is checked and locked before any work (``force`` to overwrite an existing file); it must differ from
    ``checkpoint``. ``options`` are the method's own (``apply_smartexchange``, ``apply_kmeans``,
    ``apply_quantize``).
    """
    if method not in METHODS:
        raise ConfigError(f"unknown compression method {method!r}; choose one of: {', '.join(METHODS)}")
    for label, v in (("retrain epochs", retrain_epochs), ("regularize epochs", regularize_epochs)):
        if v < 0:
            raise ConfigError(f"{label} must be >= 0; got {v}")
    if Path(out).resolve() == Path(checkpoint).resolve():
        raise ConfigError("--out must differ from the input checkpoint")
    with claim_output(out, overwrite=force):
        return _compress(method, checkpoint, out, data, retrain_epochs, lr, batch_size, seed, train_limit,
                         regularize_epochs, regularizer, reg_lambda, on_epoch, options)


def _compress(method, checkpoint, out, data, retrain_epochs, lr, batch_size, seed, train_limit, regularize_epochs,
              regularizer, reg_lambda, on_epoch, options):
    ckpt = load_checkpoint(checkpoint)
    if ckpt.compressed:
        raise CheckpointError(f"{checkpoint} is already compressed; compress the dense checkpoint it came from")
    model = ckpt.model()
    data_name = data or ckpt.training.get("data")
    if not data_name:
        raise ConfigError(f"{checkpoint} does not say which data it was trained on; pass --data")
    dataset = load_data(data_name)
    mean = ckpt.mean if ckpt.mean is not None else dataset.mean
    std = ckpt.std if ckpt.std is not None else dataset.std

    def test_accuracy():
        return accuracy(model, dataset.x_test, dataset.y_test, lambda x: dataset.normalize(x, mean, std))

    def train(epochs, methods=()):
        if epochs <= 0:
            return []
        cfg = TrainConfig(net=model.name, data=data_name, epochs=epochs, batch_size=batch_size, lr=lr,
                          schedule="cosine", weight_decay=0.0 if method == "smartexchange" else 1e-4,
                          seed=seed, train_limit=train_limit, augment=ckpt.training.get("augment"))
        trainer = Trainer(model, dataset, cfg, on_epoch=on_epoch, methods=methods)
        trainer.mean, trainer.std = mean, std
        return trainer.run()

    t0 = time.perf_counter()
    before_bits = model.dense_bits()
    report = {"method": method, "checkpoint": str(checkpoint), "out": str(out), "data": data_name}
    report["accuracy_before"] = test_accuracy()
    history = []
    if method == "smartexchange":
        apply_smartexchange(model, **options)
    elif method == "kmeans":
        if regularize_epochs:
            reg = KMeansRegularizer(model, options.get("clusters", 16), reg_lambda, regularizer, seed=seed)
            history += train(regularize_epochs, methods=[reg])
            report["accuracy_after_regularizer"] = test_accuracy()
        apply_kmeans(model, seed=seed, **options)
    else:
        apply_quantize(model, **options)
    report["accuracy_compressed"] = test_accuracy()
    history += train(retrain_epochs)
    report["accuracy_after"] = test_accuracy()
    report["layers"] = layer_report(model)
    total_bits = model.storage_bits()
    report.update({
        "storage_bits": total_bits, "dense_bits": before_bits, "compression_ratio": before_bits / total_bits,
        "conv_storage_bits": sum(r["storage_bits"] for r in report["layers"] if r["kind"] == "conv"),
        "conv_dense_bits": sum(r["parameters"] * 32 for r in report["layers"] if r["kind"] == "conv"),
        "retrain_epochs": retrain_epochs, "regularize_epochs": regularize_epochs, "options": options,
        "seconds": time.perf_counter() - t0,
    })
    report["conv_compression_ratio"] = report["conv_dense_bits"] / max(report["conv_storage_bits"], 1)
    if method == "kmeans":
        report["energy_metric"] = sharing_energy(model)
    training = dict(ckpt.training)
    training["compression"] = {k: v for k, v in report.items() if k != "layers"}
    save_checkpoint(out, Checkpoint(model.config(), model.state(), training=training,
                                    history=list(ckpt.history) + history, epoch=ckpt.epoch, mean=mean, std=std))
    return report
