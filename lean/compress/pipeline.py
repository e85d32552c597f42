"""Compress a trained checkpoint: apply a method to its layers, re-train, measure, report and save.

``compress(method, checkpoint, out, ...)`` is what ``lean compress`` runs:

1. load the model and its data; test accuracy before;
2. ``smartexchange``: decompose every conv and linear weight (``smartexchange.decompose_layer``; Zhao et al.,
   ISCA 2020) and put a ``SmartExchangeWeight`` in its place; ``kmeans``: optionally re-train with the
   spectrally relaxed k-means regularizer (``KMeansRegularizer``; Wu et al., ICML 2018), then cluster every
   conv layer's kernel rows (``kmeans.cluster_rows``) into a ``SharedWeight``; ``quantize``:
   ``QuantizedWeight`` on every conv and linear weight, and optionally fake-quantized layer inputs;
3. test accuracy straight after, then re-train for ``retrain_epochs``. SmartExchange: by default the authors'
   schedule (``retrain="redecompose"``, ``SmartExchangeRedecomposition``): SGD on the dense weights, each weight
   decomposed anew after every epoch and replaced by its rebuilt Ce x B, the forms made from the last
   decomposition (their loop; lean keeps its cosine schedule without weight decay, their scripts use step decay
   and weight decay); or lean's ``"fixed-mask"``: Ce and B fine-tuned with the straight-through gradients of
   ``lean.nn.compressed`` (Bengio et al., 2013) and the first decomposition's sparsity pattern. Deep k-means:
   the paper's fine-tuning of the shared centres with the assignments fixed; quantization: straight-through
   fine-tuning. Test accuracy after;
4. save the compressed checkpoint (compact arrays) and return the report: per layer parameters, storage bits,
   ratio against float32, sparsity; totals over everything needed to run the model.
"""

import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from .. import kernels
from ..errors import CheckpointError, ConfigError
from ..hw.bitcost import workload_cost
from ..hw.workload import from_model
from ..nn import Conv2d, Linear, Model
from ..nn.checkpoint import Checkpoint, claim_output
from ..nn.checkpoint import load as load_checkpoint
from ..nn.checkpoint import save as save_checkpoint
from ..nn.compressed import CENTRE_BITS, QuantizedWeight, SharedWeight, SmartExchangeWeight
from ..train import TrainConfig, Trainer
from ..train.methods import TrainingMethod
from ..train.run import CheckpointData
from . import kmeans as km
from . import smartexchange as se
from .config import DEFAULTS

_SE, _KM, _QU, _RE = DEFAULTS["smartexchange"], DEFAULTS["kmeans"], DEFAULTS["quantize"], DEFAULTS["retrain"]
RETRAIN_SCHEDULES = ("redecompose", "fixed-mask")  # SmartExchange's re-training: the authors', lean's

METHODS = ("smartexchange", "kmeans", "quantize")


def _weighted_layers(model, convs_only=False):
    for name, layer in model.net.named_modules():
        if isinstance(layer, Conv2d) or (isinstance(layer, Linear) and not convs_only):
            yield name, layer


def apply_smartexchange(model: Model, *, theta: float = _SE["theta"], max_exponent: int = _SE["max_exponent"],
                        exponent_bits: int = _SE["exponent_bits"], basis_bits: int = _SE["basis_bits"],
                        row_threshold: float | None = _SE["row_threshold"]) -> None:
    """Replace every conv and linear weight of ``model`` by its SmartExchange form, in place.

    Parameters
    ----------
    model : Model
        A dense model; its conv (k, c/groups, r, s) and linear (k, n) weights are decomposed.
    theta, max_exponent, exponent_bits, basis_bits, row_threshold
        As for ``lean.compress.smartexchange.decompose_layer``.
    """
    _set_smartexchange_forms(model, decompose_model(model, theta=theta, max_exponent=max_exponent,
                                                    exponent_bits=exponent_bits, basis_bits=basis_bits,
                                                    row_threshold=row_threshold))


def decompose_model(model: Model, *, theta: float = _SE["theta"], max_exponent: int = _SE["max_exponent"],
                    exponent_bits: int = _SE["exponent_bits"], basis_bits: int = _SE["basis_bits"],
                    row_threshold: float | None = _SE["row_threshold"]) -> dict:
    """The SmartExchange decomposition (``smartexchange.decompose_layer``) of every conv and linear weight of
    ``model``, by layer name; the model is not changed."""
    return {name: se.decompose_layer(layer.weight(), theta, max_exponent, exponent_bits, basis_bits,
                                     row_threshold=row_threshold)
            for name, layer in _weighted_layers(model)}


def _set_smartexchange_forms(model, decompositions):
    for name, layer in _weighted_layers(model):
        d = decompositions[name]
        layer.set_form(SmartExchangeWeight(d.shape, se.BLOCK_ROWS, d.max_exponent, d.exponent_bits, d.basis_bits)
                       .set_blocks(d.blocks))


class SmartExchangeRedecomposition(TrainingMethod):
    """The authors' re-training of SmartExchange: SGD on the dense weights, and after every epoch each weight is
    decomposed anew (a new sparsity pattern each time) and replaced by its rebuilt ``Ce x B``
    (``--retrain redecompose``). ``decompose()`` does one round; ``decompositions`` holds the last one per layer,
    from which the compressed forms are made at the end. The epoch's reported test accuracy is the dense
    weights' (the trainer evaluates before ``on_epoch_end``); the authors keep the best epoch by accuracy after
    the decomposition, lean keeps the last."""

    name = "smartexchange_redecompose"

    def __init__(self, model, options):
        self.model, self.options = model, dict(options)
        self.decompositions = {}

    def decompose(self):
        self.decompositions = decompose_model(self.model, **self.options)
        for name, layer in _weighted_layers(self.model):
            layer.params["weight"][...] = self.decompositions[name].dense()

    def install(self, model):
        self.model = model

    def on_epoch_end(self, trainer):
        self.decompose()

    def install_forms(self):
        """Each layer's compressed form from its last decomposition."""
        _set_smartexchange_forms(self.model, self.decompositions)


def _clusters_for(names, clusters):
    if isinstance(clusters, (list, tuple)):
        if len(clusters) != len(names):
            raise ConfigError(f"--clusters lists {len(clusters)} values but the model has {len(names)} conv layers")
        return dict(zip(names, clusters, strict=True))
    return {n: clusters for n in names}


def apply_kmeans(model: Model, *, clusters: int | list[int] | tuple[int, ...] = _KM["clusters"],
                 sparsity: float = _KM["sparsity"], sparse_centre: str = _KM["sparse_centre"],
                 seed: int = _RE["seed"]) -> None:
    """Share cluster centres among the kernel rows of every conv layer of ``model``, in place (Wu et al.'s
    weight sharing; linear layers stay dense).

    Parameters
    ----------
    model : Model
        A dense model.
    clusters : int or sequence of int
        K for every conv layer, or one K per conv layer in network order; each capped at the layer's number of
        kernel rows.
    sparsity, sparse_centre
        As for ``lean.compress.kmeans.cluster_rows``: the fraction of rows that share centre 0, and which centre
        (``"mean"``, the authors', or ``"zero"``); centre 0 then stays fixed in fine-tuning.
    seed : int
        Seed of the k-means++ draws.

    Raises
    ------
    ConfigError
        A list of ``clusters`` whose length is not the number of conv layers, or ``cluster_rows``' own errors.
    """
    layers = list(_weighted_layers(model, convs_only=True))
    per_layer = _clusters_for([n for n, _ in layers], clusters)
    for name, layer in layers:
        w = layer.weight()
        k = min(int(per_layer[name]), km.kernel_rows(w).shape[0])
        shared = km.cluster_rows(w, k, sparsity=sparsity, seed=seed, sparse_centre=sparse_centre)
        layer.set_form(SharedWeight(w.shape, k, fixed_centre=shared.shared_centre).set_clusters(shared.centres,
                                                                                                shared.labels))


def apply_quantize(model: Model, *, weight_bits: int = _QU["weight_bits"],
                   activation_bits: int | None = _QU["activation_bits"], per_channel: bool = _QU["per_channel"],
                   scheme: str = _QU["scheme"]) -> None:
    """Quantize every conv and linear weight of ``model`` (and optionally their inputs), in place.

    Parameters
    ----------
    model : Model
        A dense model.
    weight_bits : int
        Bits per weight code.
    activation_bits : int or None
        Bits of each conv/linear layer's fake-quantized input (channels-last (n, h, w, c) or (n, features));
        None leaves inputs in float32.
    per_channel : bool
        One scale per output channel (axis 0 of the weight) rather than one per tensor.
    scheme : str
        The weight quantizer: "symmetric", "asymmetric" or "pow2" (``lean.nn.compressed.QuantizedWeight``).
    """
    for _, layer in _weighted_layers(model):
        w = layer.weight()
        layer.set_form(QuantizedWeight(w.shape, weight_bits, per_channel, scheme).set_weight(w))
        if activation_bits is not None:
            layer.set_input_bits(activation_bits)


class KMeansRegularizer(TrainingMethod):
    """The spectrally relaxed k-means regularizer of deep k-means, as a training hook.

    The loss gains (lambda/2) [Tr(W^T W) - Tr(F^T W^T W F)] with F^T F = I, whose gradient adds
    lambda * W (I - F F^T) to each conv weight's gradient, with W the (s, N) matrix of kernel rows
    (``lean.compress.kmeans.kernel_rows``, transposed).
    ``form="paper"``: F = the top-K right singular vectors of W, refreshed every ``refresh_epochs`` epochs (with
    s <= K rows these span W's row space, so the term is zero at each refresh and only resists drift).
    ``form="indicator"``: F = the normalized cluster-indicator matrix of a k-means assignment refreshed the same
    way; W F F^T puts every column at its cluster mean, so the term pulls each kernel row toward its centre.

    Parameters
    ----------
    model : Model
        The model being trained; its conv layers are regularized.
    clusters : int or sequence of int
        K, for every conv layer or one per conv layer (as for ``apply_kmeans``).
    lam : float
        lambda (authors: 1e-4).
    form : str
        "paper" or "indicator".
    refresh_epochs : int
        Epochs between refreshes of F (authors: 5).
    seed : int
        Seed of the indicator form's k-means.

    Notes
    -----
    Wu et al., ICML 2018, the spectrally relaxed k-means regularizer used in re-training (equation number
    unconfirmed); the indicator form is lean's (``METHODS.md``).
    """

    name = "kmeans_regularizer"

    def __init__(self, model: Model, clusters: int | list[int] | tuple[int, ...], lam: float = 1e-4,
                 form: str = "paper", refresh_epochs: int = 5, seed: int = 0):
        if form not in ("paper", "indicator"):
            raise ConfigError(f"regularizer form must be 'paper' or 'indicator'; got {form!r}")
        self.layers = list(_weighted_layers(model, convs_only=True))
        self.clusters = _clusters_for([n for n, _ in self.layers], clusters)
        self.lam, self.form, self.refresh_epochs, self.seed = float(lam), form, int(refresh_epochs), seed
        self.projections = {}  # layer -> F (paper form) or cluster labels (indicator form), per refresh

    def _refresh(self):
        for name, layer in self.layers:
            rows = km.kernel_rows(layer.params["weight"]).astype(np.float64)  # (N, s) = W^T
            k = min(int(self.clusters[name]), rows.shape[0])
            if self.form == "paper":
                _, _, vt = np.linalg.svd(rows.T, full_matrices=False)        # W = U S V^T, V (N, s)
                self.projections[name] = vt[:k].T                                   # top-k right singular vectors
            else:
                self.projections[name] = km.cluster_rows(layer.params["weight"], k, seed=self.seed, max_iter=20).labels

    def on_epoch_start(self, trainer):
        # F is refreshed lazily, every refresh_epochs epochs (authors: 5), not at every step
        if trainer.epoch % self.refresh_epochs == 0 or not self.projections:
            self._refresh()

    def before_update(self, trainer):
        for name, layer in self.layers:
            w = layer.params["weight"]
            rows = km.kernel_rows(w).astype(np.float64)                       # W^T, (N, s)
            if self.form == "paper":
                v = self.projections[name]
                projected = v @ (v.T @ rows)                                  # (F F^T W^T)
            else:
                labels = self.projections[name]
                k = int(labels.max()) + 1
                sums = kernels.segment_sum(rows, labels, k)
                counts = np.bincount(labels, minlength=k)[:, None]
                projected = (sums / np.maximum(counts, 1))[labels]
            # the regularizer's gradient lambda * W (I - F F^T), held transposed as rows (N, s)
            layer.grads["weight"] += (self.lam * (rows - projected)).reshape(w.shape).astype(np.float32)


def sharing_energy(model: Model) -> dict:
    """Deep k-means' energy metric (``lean.hw.bitcost``) of the model dense and as shared: weights (dense and
    centres alike) at ``CENTRE_BITS``, the width storage counts them at, activations at 16 bits.

    Parameters
    ----------
    model : Model
        A model whose conv layers may hold ``SharedWeight`` forms.

    Returns
    -------
    dict
        ``dense`` and ``shared``: the metric's breakdown (``lean.hw.bitcost``'s ``to_dict()``); ``saving``:
        dense total over shared total (full-adder units).
    """
    workload = from_model(model, w_bits=CENTRE_BITS, a_bits=16)
    workload = type(workload)(workload.name, tuple(
        layer.__class__(**{**layer.to_dict(), "w_bits": CENTRE_BITS}) for layer in workload.layers))
    shared = {name: layer.form.clusters for name, layer in _weighted_layers(model, convs_only=True)
              if isinstance(layer.form, SharedWeight)}
    dense, after = workload_cost(workload), workload_cost(workload, shared)
    return {"dense": dense.to_dict(), "shared": after.to_dict(), "saving": dense.total_fa / after.total_fa}


def layer_report(model: Model) -> list[dict]:
    """Per conv and linear layer: what it stores and how sparse its weight is.

    Parameters
    ----------
    model : Model
        A model, compressed or dense.

    Returns
    -------
    list of dict
        One per conv/linear layer in network order: ``layer`` (name), ``kind`` ("conv" or "fc"),
        ``parameters`` (weight entries), ``storage_bits``, ``compression_ratio`` (float32 bits over
        storage bits), ``sparsity`` (fraction of zero weights in the rebuilt weight), ``form`` (the weight
        form's class name, or "dense"); for a SmartExchange layer also ``ce_row_density`` (the fraction of Ce's
        rows with a non-zero coefficient: what the accelerator rebuilds and multiplies).
    """
    rows = []
    for name, layer in _weighted_layers(model):
        w = layer.weight()
        form = layer.form
        bits = form.storage_bits() if form is not None else w.size * 32
        rows.append({"layer": name, "kind": "conv" if isinstance(layer, Conv2d) else "fc",
                     "parameters": int(w.size), "storage_bits": int(bits),
                     "compression_ratio": w.size * 32 / bits if bits else float("inf"),
                     "sparsity": float(1.0 - np.count_nonzero(w) / w.size),
                     "form": type(form).__name__ if form is not None else "dense",
                     **({"ce_row_density": form.row_density()} if isinstance(form, SmartExchangeWeight) else {})})
    return rows


def compress(method: str, checkpoint: str | Path, out: str | Path, *, force: bool = False, data: str | None = None,
             retrain_epochs: int = _RE["retrain_epochs"], lr: float = _RE["lr"], batch_size: int = _RE["batch_size"],
             seed: int = _RE["seed"], train_limit: int | None = None,
             regularize_epochs: int = _KM["regularize_epochs"], regularizer: str = _KM["regularizer"],
             reg_lambda: float = _KM["reg_lambda"], on_epoch: Callable[[dict], None] | None = None,
             retrain: str | None = None, **options) -> dict:
    """Run ``method`` on ``checkpoint`` and write ``out``; returns the report dict (see the module docstring).

    ``out`` is checked and locked before any work (``force`` to overwrite an existing file); it must differ from
    ``checkpoint``. ``options`` are the method's own (``apply_smartexchange``, ``apply_kmeans``,
    ``apply_quantize``).

    Parameters
    ----------
    method : str
        "smartexchange", "kmeans" or "quantize".
    checkpoint : str or Path
        A dense checkpoint that says which data it was trained on (or give ``data``).
    out : str or Path
        Where the compressed checkpoint goes.
    force : bool
        Overwrite an existing ``out``.
    data : str or None
        The dataset to test and re-train on, if not the checkpoint's own.
    retrain_epochs : int
        Epochs of fine-tuning of the compressed form (cosine schedule from ``lr``; weight decay 1e-4, none for
        SmartExchange).
    lr, batch_size, seed, train_limit
        The re-training's learning rate, batch size, seed and training-set limit.
    regularize_epochs : int
        kmeans only: epochs of re-training with ``KMeansRegularizer`` before clustering.
    regularizer : str
        kmeans only: the regularizer's form, "paper" or "indicator".
    reg_lambda : float
        kmeans only: the regularizer's lambda.
    on_epoch : callable or None
        Called with each training epoch's history entry (progress display).
    retrain : str or None
        smartexchange only: ``"redecompose"`` (the default; the authors': SGD on the dense weights, decomposed
        anew after every epoch, ``SmartExchangeRedecomposition``) or ``"fixed-mask"`` (lean's: Ce and B trained
        straight-through with the first decomposition's sparsity pattern).
    **options
        The method's own settings, passed to ``apply_<method>``.

    Returns
    -------
    dict
        ``method``, ``checkpoint``, ``out``, ``data``; test accuracies ``accuracy_before``,
        ``accuracy_after_regularizer`` (kmeans with ``regularize_epochs`` only), ``accuracy_compressed``
        (before re-training), ``accuracy_after``; ``layers`` (``layer_report``); ``storage_bits`` and
        ``dense_bits`` (whole model) and their ``compression_ratio``; ``conv_storage_bits``,
        ``conv_dense_bits``, ``conv_compression_ratio`` (conv layers only); ``retrain_epochs``,
        ``regularize_epochs``, ``options``, ``seconds``; for kmeans, ``energy_metric`` (``sharing_energy``).

    Raises
    ------
    ConfigError
        Unknown ``method``, negative epochs, ``out`` equal to ``checkpoint``, no dataset known.
    CheckpointError
        ``checkpoint`` is already compressed.
    OutputError
        ``out`` exists (without ``force``), cannot be written or is held by another run.
    """
    if method not in METHODS:
        raise ConfigError(f"unknown compression method {method!r}; choose one of: {', '.join(METHODS)}")
    for label, v in (("retrain epochs", retrain_epochs), ("regularize epochs", regularize_epochs)):
        if v < 0:
            raise ConfigError(f"{label} must be >= 0; got {v}")
    if Path(out).resolve() == Path(checkpoint).resolve():
        raise ConfigError("--out must differ from the input checkpoint")
    if retrain is not None and method != "smartexchange":
        raise ConfigError("--retrain chooses SmartExchange's re-training schedule; other methods have one")
    retrain = retrain or "redecompose"
    if retrain not in RETRAIN_SCHEDULES:
        raise ConfigError(f"--retrain must be one of {', '.join(RETRAIN_SCHEDULES)}; got {retrain!r}")
    with claim_output(out, overwrite=force):
        return _compress(method, checkpoint, out, data, retrain_epochs, lr, batch_size, seed, train_limit,
                         regularize_epochs, regularizer, reg_lambda, on_epoch, options, retrain)


def _compress(method, checkpoint, out, data, retrain_epochs, lr, batch_size, seed, train_limit, regularize_epochs,
              regularizer, reg_lambda, on_epoch, options, retrain):
    ckpt = load_checkpoint(checkpoint)
    if ckpt.compressed:
        raise CheckpointError(f"{checkpoint} is already compressed; compress the dense checkpoint it came from")
    model = ckpt.model()
    test = CheckpointData(ckpt, checkpoint, data, model)
    data_name, dataset, mean, std = test.name, test.dataset, test.mean, test.std

    def test_accuracy():
        return test.accuracy(model)

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
    redo = None  # SmartExchange's re-training by re-decomposition (the authors'), when it re-trains
    if method == "smartexchange" and retrain == "redecompose" and retrain_epochs > 0:
        redo = SmartExchangeRedecomposition(model, options)
        redo.decompose()  # the dense weights become their rebuilt Ce x B: the compressed model's accuracy
    elif method == "smartexchange":
        apply_smartexchange(model, **options)
    elif method == "kmeans":
        if regularize_epochs:
            reg = KMeansRegularizer(model, options.get("clusters", _KM["clusters"]), reg_lambda, regularizer,
                                    seed=seed)
            history += train(regularize_epochs, methods=[reg])
            report["accuracy_after_regularizer"] = test_accuracy()
        apply_kmeans(model, seed=seed, **options)
    else:
        apply_quantize(model, **options)
    report["accuracy_compressed"] = test_accuracy()
    history += train(retrain_epochs, methods=[redo] if redo else [])
    if redo:
        redo.install_forms()
    report["accuracy_after"] = test_accuracy()
    report["layers"] = layer_report(model)
    total_bits = model.storage_bits()
    report.update({
        "storage_bits": total_bits, "dense_bits": before_bits, "compression_ratio": before_bits / total_bits,
        "conv_storage_bits": sum(r["storage_bits"] for r in report["layers"] if r["kind"] == "conv"),
        "conv_dense_bits": sum(r["parameters"] * 32 for r in report["layers"] if r["kind"] == "conv"),
        "retrain_epochs": retrain_epochs, "regularize_epochs": regularize_epochs, "options": options,
        **({"retrain": retrain} if method == "smartexchange" else {}),
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
