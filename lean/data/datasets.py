"""Where images come from: the shipped UCI digits, Fashion-MNIST, MNIST, CIFAR-10/100, and a user's own file.

- ``digits``: the UCI optical recognition of handwritten digits test set (1,797 8x8 images, pixel counts 0..16,
  CC BY 4.0; the copy scikit-learn ships as ``digits.csv.gz``), shipped inside this package. Split into 1,347
  training and 450 test images by a fixed seeded shuffle, stratified by class.
- ``fashion-mnist``: read from Debian's ``dataset-fashion-mnist`` (/usr/share/datasets/fashion-mnist), from the
  cache, or downloaded; every file is checked by the SHA-256 of its decompressed content (Debian recompresses
  the archives, so the upstream .gz checksums would not match).
- ``mnist``, ``cifar10``, ``cifar100``: downloaded into the cache from their canonical sources, checked by the
  MD5 their publishers give for each archive. CIFAR uses the binary version (no pickle).
- a path ending in ``.npz``, ``.h5`` or ``.hdf5`` with arrays ``x_train``, ``y_train``, ``x_test``, ``y_test``.

The cache is ``$LEAN_DATA`` if set, else ``~/.cache/lean``.
"""

import gzip
import hashlib
import io
import os
import tarfile
import urllib.request
import warnings
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np

from ..errors import DataError
from .augment import random_crop_flip

# The datasets a run augments (random crop, pad 4, and horizontal flip) unless its recipe or --augment says
# otherwise: the CIFAR ResNet papers' augmentation, which Fashion-MNIST's ResNet-20 benchmark used as well.
AUGMENTED = ("fashion-mnist", "cifar10", "cifar100")

# More classes than this is a label mistake, not a dataset (a model head of 10^5 outputs).
MAX_CLASSES = 100_000
DATA_FILE_SUFFIXES = (".npz", ".h5", ".hdf5")


def is_data_file(name: str | os.PathLike) -> bool:
    """Whether a dataset name is a user's file (``.npz``, ``.h5``, ``.hdf5``) rather than a known dataset."""
    return str(name).endswith(DATA_FILE_SUFFIXES)


@dataclass
class Dataset:
    """Training and test images with their labels, kept compact (uint8 where the source is), channels-last.

    Parameters
    ----------
    name : str
        The dataset's name (a user's file: its stem), used in messages.
    x_train, x_test : np.ndarray
        (n, h, w, c) images of real numbers (typically uint8; bool becomes uint8); (n, h, w) gets a channel
        axis, and an array that looks channels-first is transposed with a warning. Pixels must be finite.
    y_train, y_test : np.ndarray
        (n,) integer labels in 0..len(classes) - 1; stored as int64.
    classes : list of str
        Class names, by label.
    augment : bool
        Random crop (pad 4) and, if ``flip``, horizontal flip of training batches (``random_crop_flip``).
    flip : bool
        Whether augmentation includes the horizontal flip.

    Attributes ``mean`` and ``std`` ((c,) float32) are the training images' per-channel statistics, the default
    normalization. Malformed arrays raise ``DataError``.
    """

    name: str
    x_train: np.ndarray  # (n, h, w, c), uint8 or float32
    y_train: np.ndarray  # (n,), int64
    x_test: np.ndarray
    y_test: np.ndarray
    classes: list[str]
    augment: bool = False  # random crop (pad 4) + horizontal flip in training
    flip: bool = True

    def __post_init__(self):
        for split in ("train", "test"):
            x = _checked_images(self.name, f"x_{split}", getattr(self, f"x_{split}"))
            setattr(self, f"x_{split}", x)
            y = np.asarray(getattr(self, f"y_{split}"))
            if y.ndim != 1 or len(y) != len(x):
                raise DataError(f"{self.name}: y_{split} must be (n,) with n = {len(x)}; got shape {y.shape}")
            if not (np.issubdtype(y.dtype, np.integer) or np.issubdtype(y.dtype, np.floating)):
                raise DataError(f"{self.name}: y_{split} must hold integer class labels; got dtype {y.dtype}")
            if not np.issubdtype(y.dtype, np.integer) and not np.all(np.equal(np.mod(y, 1), 0)):
                raise DataError(f"{self.name}: y_{split} must hold integer class labels")
            setattr(self, f"y_{split}", y.astype(np.int64))
        if self.x_train.shape[1:] != self.x_test.shape[1:]:
            raise DataError(f"{self.name}: train images {self.x_train.shape[1:]} and test images "
                            f"{self.x_test.shape[1:]} differ in shape")
        k = len(self.classes)
        for y in (self.y_train, self.y_test):
            if y.min() < 0 or y.max() >= k:
                raise DataError(f"{self.name}: labels must lie in 0..{k - 1}; found {y.min()}..{y.max()}")
        self.mean, self.std = channel_stats(self.x_train)

    @property
    def input_shape(self) -> tuple[int, int, int]:
        """(h, w, c) of one image."""
        return tuple(int(v) for v in self.x_train.shape[1:])

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def normalize(self, x: np.ndarray, mean: np.ndarray | None = None, std: np.ndarray | None = None) -> np.ndarray:
        """``(x - mean) / std`` per channel, float32.

        Parameters
        ----------
        x : np.ndarray
            (n, h, w, c) images, any real dtype.
        mean, std : np.ndarray or None
            (c,) per-channel statistics; None: the dataset's own (a model keeps the ones it was trained with,
            e.g. a checkpoint's).

        Returns
        -------
        np.ndarray
            (n, h, w, c) float32.
        """
        mean = self.mean if mean is None else mean
        std = self.std if std is None else std
        return ((x.astype(np.float32) - mean) / std).astype(np.float32)

    def train_batch(self, indices: np.ndarray, rng: np.random.Generator, mean: np.ndarray | None = None,
                    std: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Normalized float32 training batch (by ``mean``/``std``, default the dataset's own), augmented if the
        dataset asks for it.

        Parameters
        ----------
        indices : np.ndarray
            (b,) integer indices into the training set.
        rng : np.random.Generator
            Source of the augmentation's randomness (unused without augmentation).
        mean, std : np.ndarray or None
            As for ``normalize``.

        Returns
        -------
        x : np.ndarray
            (b, h, w, c) float32.
        y : np.ndarray
            (b,) int64 labels.
        """
        x = self.x_train[indices]
        if self.augment:
            x = random_crop_flip(x, rng, pad=4, flip=self.flip)
        return self.normalize(x, mean, std), self.y_train[indices]

    def fingerprint(self) -> str:
        """SHA-256 of the four arrays' contents: recognises the same data after its file moved."""
        digest = hashlib.sha256()
        for a in (self.x_train, self.y_train, self.x_test, self.y_test):
            digest.update(str((a.dtype.str, a.shape)).encode())
            digest.update(np.ascontiguousarray(a).view(np.uint8).reshape(-1))
        return digest.hexdigest()

    def limit(self, n_train: int | None) -> "Dataset":
        """The first ``n_train`` training images (for quick experiments); None: this dataset itself.

        The limited dataset's ``mean`` and ``std`` are those of its own training images.
        """
        if n_train is None:
            return self
        if n_train < 1:
            raise DataError(f"train limit must be >= 1; got {n_train}")
        return Dataset(self.name, self.x_train[:n_train], self.y_train[:n_train], self.x_test, self.y_test,
                       self.classes, self.augment, self.flip)


def _checked_images(name, label, x):
    """Images as (n, h, w, c) with real, finite pixel values, or a ``DataError`` saying what is wrong.

    (n, h, w) gets a channel axis; an array that looks channels-first, (n, c, h, w) with c of 1, 3 or 4 and a last
    axis larger than 4, is transposed to channels-last with a warning (lean's layout is (n, h, w, c)).
    """
    x = np.asarray(x)
    if not (np.issubdtype(x.dtype, np.integer) or np.issubdtype(x.dtype, np.floating) or x.dtype == bool):
        raise DataError(f"{name}: {label} must hold numbers (pixel values); got dtype {x.dtype}")
    if x.ndim == 3:
        x = x[..., None]
    if x.ndim != 4:
        raise DataError(f"{name}: {label} must be (n, h, w) or (n, h, w, c); got shape {x.shape}")
    if x.shape[0] == 0 or 0 in x.shape[1:]:
        raise DataError(f"{name}: {label} is empty (shape {x.shape})")
    if x.shape[1] in (1, 3, 4) and x.shape[3] > 4:
        warnings.warn(f"{name}: {label} of shape {x.shape} looks channels-first (n, c, h, w); lean reads it as "
                      f"(n, h, w, c) = {(x.shape[0], x.shape[2], x.shape[3], x.shape[1])}", stacklevel=3)
        x = np.ascontiguousarray(x.transpose(0, 2, 3, 1))
    if x.dtype == bool:
        x = x.astype(np.uint8)
    if np.issubdtype(x.dtype, np.floating):
        bad = int(np.size(x) - np.count_nonzero(np.isfinite(x)))
        if bad:
            raise DataError(f"{name}: {label} has {bad:,} NaN or infinite pixel values")
    return x


def _class_names(name, *labels):
    """Class names 0..K-1 for integer labels, where K is the largest label + 1; refuses labels that leave most
    of 0..K-1 unused (a stray label of 10^6 would make a 10^6-output model) or are negative."""
    values = np.unique(np.concatenate([np.asarray(y).reshape(-1) for y in labels]))
    if not (np.issubdtype(values.dtype, np.integer) or np.issubdtype(values.dtype, np.floating)):
        raise DataError(f"{name}: labels must be integer class numbers; got dtype {values.dtype}")
    if values.size == 0:
        raise DataError(f"{name}: no labels")
    if not np.all(np.isfinite(values)) or not np.all(np.equal(np.mod(values, 1), 0)):
        raise DataError(f"{name}: labels must be integer class numbers")
    low, high = int(values.min()), int(values.max())
    if low < 0:
        raise DataError(f"{name}: labels must be 0..K-1; found {low}")
    if high >= MAX_CLASSES or values.size < (high + 1) / 2:
        raise DataError(f"{name}: labels run up to {high} but only {values.size} distinct values appear; number "
                        f"the classes 0..{values.size - 1}")
    return [str(i) for i in range(high + 1)]


def channel_stats(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel mean and standard deviation of (n, h, w, c) images (exact; histogram-based for uint8).

    Returns ``(mean, std)``, each (c,) float32; a standard deviation below 1e-6 is raised to 1e-6 so normalizing
    a constant channel does not divide by zero.
    """
    c = x.shape[-1]
    mean, std = np.empty(c, np.float32), np.empty(c, np.float32)
    for ch in range(c):
        values = x[..., ch]
        if values.dtype == np.uint8:
            counts = np.bincount(values.ravel(), minlength=256).astype(np.float64)
            levels = np.arange(256, dtype=np.float64)
            mu = (counts * levels).sum() / counts.sum()
            var = (counts * (levels - mu) ** 2).sum() / counts.sum()
        else:
            mu = values.mean(dtype=np.float64)
            var = values.var(dtype=np.float64)
        mean[ch], std[ch] = mu, max(np.sqrt(var), 1e-6)
    return mean, std


def cache_dir() -> Path:
    """Where downloaded datasets live: ``$LEAN_DATA`` if set, else ``~/.cache/lean``."""
    return Path(os.environ.get("LEAN_DATA") or Path.home() / ".cache" / "lean")


# ----------------------------------------------------------------------------------------------- digits

def load_digits() -> Dataset:
    """The shipped UCI digits: 1,347 training and 450 test 8x8x1 uint8 images (0..16 scaled to 0..255)."""
    raw = resources.files("lean.data").joinpath("files/digits.csv.gz").read_bytes()
    table = np.loadtxt(io.BytesIO(gzip.decompress(raw)), delimiter=",", dtype=np.int64)
    x = (table[:, :64].reshape(-1, 8, 8, 1) * (255.0 / 16.0)).round().astype(np.uint8)
    y = table[:, 64]
    rng = np.random.default_rng(20240601)
    test = np.zeros(len(y), dtype=bool)
    for label in range(10):
        idx = np.flatnonzero(y == label)
        test[rng.choice(idx, size=round(len(idx) * 0.25), replace=False)] = True
    return Dataset("digits", x[~test], y[~test], x[test], y[test], [str(i) for i in range(10)])


# ------------------------------------------------------------------------------------------ IDX (MNIST)

def parse_idx(data: bytes, name: str) -> np.ndarray:
    """Parse an IDX file (the MNIST format): magic 0x0000 0x08 ndim, big-endian sizes, then uint8 data.

    Parameters
    ----------
    data : bytes
        The decompressed file.
    name : str
        The file's name, for error messages.

    Returns
    -------
    np.ndarray
        uint8, (n,) for a label file or (n, h, w) for an image file; a read-only view of ``data``.
    """
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] != 0x08 or data[3] not in (1, 3):
        raise DataError(f"{name} is not an IDX file of unsigned bytes")
    ndim = data[3]
    header = 4 + 4 * ndim
    if len(data) < header:
        raise DataError(f"{name} is truncated (header)")
    dims = [int.from_bytes(data[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim)]
    if len(data) != header + int(np.prod(dims)):
        raise DataError(f"{name} is truncated or padded: header says {dims}, got {len(data) - header} bytes of data")
    return np.frombuffer(data, dtype=np.uint8, offset=header).reshape(dims)


_IDX_FILES = ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz",
              "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")

FASHION = {
    "dirs": ["/usr/share/datasets/fashion-mnist"],
    "urls": ["http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"],
    # SHA-256 of the decompressed files (same bytes upstream and in Debian's package)
    "content_sha256": {
        "train-images-idx3-ubyte.gz": "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
        "train-labels-idx1-ubyte.gz": "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
        "t10k-images-idx3-ubyte.gz": "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
        "t10k-labels-idx1-ubyte.gz": "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
    },
    "classes": ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag",
                "Ankle boot"],
}

MNIST = {
    "dirs": [],
    "urls": ["https://ossci-datasets.s3.amazonaws.com/mnist/", "http://yann.lecun.com/exdb/mnist/"],
    # MD5 of the .gz archives as published
    "archive_md5": {
        "train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
        "train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
        "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
        "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c",
    },
    "classes": [str(i) for i in range(10)],
}


def download(urls: Sequence[str], filename: str, dest: Path, check: Callable[[bytes], object],
             fetch: Callable[[str], bytes] | None = None) -> Path:
    """Fetch ``filename`` from the first URL that answers into ``dest``; ``check(bytes)`` must pass.

    Written to a temporary name and renamed, so a broken download never leaves a file that looks complete.

    Parameters
    ----------
    urls : sequence of str
        Base URLs, tried in order; ``filename`` is appended to each.
    filename : str
        The file to fetch.
    dest : Path
        Where to write it (its folder is created).
    check : callable
        Called with the downloaded bytes; raises ``DataError`` if they are not the expected file.
    fetch : callable or None
        ``fetch(url) -> bytes``; None: ``urllib`` with a 60 s timeout (tests pass their own).

    Returns
    -------
    Path
        ``dest``. If no URL answers, ``DataError`` names each failure and where to put the file by hand.
    """
    fetch = fetch or (lambda url: urllib.request.urlopen(url, timeout=60).read())
    errors = []
    for base in urls:
        try:
            data = fetch(base + filename)
        except OSError as exc:
            errors.append(f"{base}: {exc}")
            continue
        check(data)
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = dest.with_name(dest.name + ".part")
        tmp.write_bytes(data)
        os.replace(tmp, dest)
        return dest
    raise DataError(f"could not download {filename} ({'; '.join(errors)}); without a network, put the file in "
                    f"{dest.parent}")


def _md5_check(expected, filename):
    def check(data):
        got = hashlib.md5(data).hexdigest()
        if got != expected:
            raise DataError(f"{filename}: checksum mismatch (md5 {got}, expected {expected}); file is corrupt")
    return check


def _gunzip(data, filename):
    try:
        return gzip.decompress(data)
    except (OSError, EOFError) as exc:
        raise DataError(f"{filename}: not a readable gzip file ({exc})") from exc


def _content_check(expected, filename):
    """A check that decompresses and returns the content, so callers decompress only once."""
    def check(data):
        content = _gunzip(data, filename)
        got = hashlib.sha256(content).hexdigest()
        if got != expected:
            raise DataError(f"{filename}: content checksum mismatch (sha256 {got[:12]}..., expected "
                            f"{expected[:12]}...); the file is corrupt or not the dataset")
        return content
    return check


def _idx_dataset(name, spec, fetch=None, download_ok=True):
    arrays = []
    for filename in _IDX_FILES:
        if "content_sha256" in spec:
            check = _content_check(spec["content_sha256"][filename], filename)
        else:
            check = _md5_check(spec["archive_md5"][filename], filename)
        path = _find_file(name, spec, filename)
        if path is None:
            if not download_ok:
                raise DataError(f"{name} is not available here: install it (Debian: apt-get install "
                                f"dataset-{name}) or put its files in {cache_dir() / name}")
            path = download(spec["urls"], filename, cache_dir() / name / filename, check, fetch)
        data = path.read_bytes()
        content = check(data)
        if content is None:
            content = _gunzip(data, str(path))
        arrays.append(parse_idx(content, str(path)))
    x_train, y_train, x_test, y_test = arrays
    return Dataset(name, x_train, y_train, x_test, y_test, spec["classes"])


def _find_file(name, spec, filename):
    for d in [cache_dir() / name, *map(Path, spec["dirs"])]:
        if (d / filename).is_file():
            return d / filename
    return None


# ---------------------------------------------------------------------------------------------- CIFAR

CIFAR10 = {
    "url": "https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz",
    "md5": "c32a1d4ab5d03f1284b67883e8d87530",
    "train": [f"data_batch_{i}.bin" for i in range(1, 6)],
    "test": ["test_batch.bin"],
    "label_bytes": 1,
    "classes": ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"],
}
CIFAR100 = {
    "url": "https://www.cs.toronto.edu/~kriz/cifar-100-binary.tar.gz",
    "md5": "03b5dce01913d631647c71ecec9e9cb8",
    "train": ["train.bin"],
    "test": ["test.bin"],
    "label_bytes": 2,  # coarse label, then fine label (we use the fine one)
    "classes": [str(i) for i in range(100)],
}


def parse_cifar_records(data: bytes, label_bytes: int, name: str) -> tuple[np.ndarray, np.ndarray]:
    """Parse a CIFAR binary batch: records of ``label_bytes`` label bytes (the last one used) and 3,072 pixels.

    Returns ``(x, y)``: x (n, 32, 32, 3) uint8 (channels-last, from the file's channel planes), y (n,) int64.
    """
    record = label_bytes + 3072
    if len(data) % record:
        raise DataError(f"{name}: size {len(data)} is not a whole number of {record}-byte CIFAR records")
    rows = np.frombuffer(data, dtype=np.uint8).reshape(-1, record)
    y = rows[:, label_bytes - 1].astype(np.int64)
    x = rows[:, label_bytes:].reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
    return np.ascontiguousarray(x), y


def _cifar_dataset(name, spec, fetch=None, download_ok=True):
    archive = cache_dir() / name / spec["url"].rsplit("/", 1)[1]
    check = _md5_check(spec["md5"], archive.name)
    if not archive.is_file():
        if not download_ok:
            raise DataError(f"{name} is not available here: it is downloaded into {archive.parent} on first use")
        download([spec["url"].rsplit("/", 1)[0] + "/"], archive.name, archive, check, fetch)
    data = archive.read_bytes()
    check(data)
    members = {}
    try:
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
            for member in tar.getmembers():
                if member.isfile():
                    members[Path(member.name).name] = tar.extractfile(member).read()
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise DataError(f"{archive}: not a readable tar.gz archive ({exc})") from exc
    splits = []
    for split in ("train", "test"):
        xs, ys = [], []
        for filename in spec[split]:
            if filename not in members:
                raise DataError(f"{archive}: missing {filename}")
            x, y = parse_cifar_records(members[filename], spec["label_bytes"], filename)
            xs.append(x)
            ys.append(y)
        splits += [np.concatenate(xs), np.concatenate(ys)]
    return Dataset(name, *splits, spec["classes"], augment=name in AUGMENTED)


# ------------------------------------------------------------------------------------------ user files

def load_file(path: str | os.PathLike) -> Dataset:
    """A user's dataset from ``.npz`` or ``.h5``/``.hdf5`` with arrays ``x_train, y_train, x_test, y_test``.

    Images as ``Dataset`` takes them ((n, h, w, c) or (n, h, w)); labels (n,) integers numbered 0..K-1, K from
    the largest label. Anything unreadable or malformed raises ``DataError`` saying what is wrong.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"data file {path} does not exist")
    keys = ("x_train", "y_train", "x_test", "y_test")
    try:
        if path.suffix == ".npz":
            with np.load(path, allow_pickle=False) as f:
                missing = [k for k in keys if k not in f]
                arrays = {k: f[k] for k in keys if k in f}
        else:
            import h5py

            with h5py.File(path, "r") as f:
                missing = [k for k in keys if k not in f]
                arrays = {k: f[k][()] for k in keys if k in f}
    except (OSError, ValueError, EOFError, KeyError, TypeError, AttributeError, zipfile.BadZipFile) as exc:
        raise DataError(f"{path} could not be read as {path.suffix[1:]} ({exc})") from exc
    if missing:
        raise DataError(f"{path} lacks arrays {', '.join(missing)} (needs {', '.join(keys)})")
    for k in ("y_train", "y_test"):
        if np.ndim(arrays[k]) != 1 or not len(arrays[k]):
            raise DataError(f"{path.stem}: {k} must be a non-empty (n,) array of labels; got shape "
                            f"{np.shape(arrays[k])}")
    classes = _class_names(path.stem, arrays["y_train"], arrays["y_test"])
    return Dataset(path.stem, arrays["x_train"], arrays["y_train"], arrays["x_test"], arrays["y_test"], classes)


# ------------------------------------------------------------------------------------------- registry

DATASETS = {
    "digits": "UCI optical digits, 8x8x1, 10 classes, shipped with lean",
    "fashion-mnist": "Zalando Fashion-MNIST, 28x28x1, 10 classes",
    "mnist": "MNIST handwritten digits, 28x28x1, 10 classes (downloaded)",
    "cifar10": "CIFAR-10, 32x32x3, 10 classes (downloaded)",
    "cifar100": "CIFAR-100, 32x32x3, 100 classes (downloaded)",
}


def load(name: str | os.PathLike, *, download_ok: bool = True,
         fetch: Callable[[str], bytes] | None = None) -> Dataset:
    """Load a dataset by name, or from a ``.npz`` / ``.h5`` path.

    Parameters
    ----------
    name : str or path
        A name of ``DATASETS`` or a path ending in ``.npz``, ``.h5`` or ``.hdf5``.
    download_ok : bool
        Download a dataset that is not on this machine (False: raise ``DataError`` instead).
    fetch : callable or None
        ``fetch(url) -> bytes`` for downloads (see ``download``).

    Returns
    -------
    Dataset
        Fashion-MNIST and CIFAR come with augmentation on; the others without.
    """
    if name is None:
        raise DataError("no dataset given")
    if is_data_file(name):
        return load_file(name)
    if name == "digits":
        return load_digits()
    if name == "fashion-mnist":
        ds = _idx_dataset(name, FASHION, fetch, download_ok)
        ds.augment = name in AUGMENTED
        return ds
    if name == "mnist":
        return _idx_dataset(name, MNIST, fetch, download_ok)
    if name == "cifar10":
        return _cifar_dataset(name, CIFAR10, fetch, download_ok)
    if name == "cifar100":
        return _cifar_dataset(name, CIFAR100, fetch, download_ok)
    raise DataError(f"unknown dataset {name!r}; known: {', '.join(DATASETS)}, or a path to .npz/.h5")


def available(name: str) -> bool:
    """Whether ``name`` can be loaded without a download."""
    if name == "digits":
        return True
    if name in ("fashion-mnist", "mnist"):
        spec = FASHION if name == "fashion-mnist" else MNIST
        return all(_find_file(name, spec, f) is not None for f in _IDX_FILES)
    if name in ("cifar10", "cifar100"):
        spec = CIFAR10 if name == "cifar10" else CIFAR100
        return (cache_dir() / name / spec["url"].rsplit("/", 1)[1]).is_file()
    return False


def catalog() -> list[dict]:
    """The known datasets (``lean data``): name, description, whether each loads without a download, and
    whether training augments it by default.

    One ``{"name": str, "description": str, "available": bool, "augment": bool}`` per entry of ``DATASETS``.
    """
    return [{"name": n, "description": d, "available": available(n), "augment": n in AUGMENTED}
            for n, d in DATASETS.items()]
