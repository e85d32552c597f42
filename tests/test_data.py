"""Dataset loaders, on the shipped digits, Debian's Fashion-MNIST, and small files in each format."""

import gzip
import hashlib
import io
import tarfile

import numpy as np
import pytest

from lean.data import DataError, available, load, random_crop_flip
from lean.data import datasets as ds


def test_digits_ship_with_the_package():
    d = load("digits")
    assert d.x_train.shape == (1347, 8, 8, 1) and d.x_test.shape == (450, 8, 8, 1)
    assert d.x_train.dtype == np.uint8 and d.num_classes == 10
    assert set(np.unique(d.y_test)) == set(range(10))
    assert available("digits")
    again = load("digits")
    np.testing.assert_array_equal(again.y_test, d.y_test)  # the split is fixed


def _idx_bytes(arr):
    arr = np.asarray(arr, np.uint8)
    header = bytes([0, 0, 8, arr.ndim]) + b"".join(int(s).to_bytes(4, "big") for s in arr.shape)
    return header + arr.tobytes()


def _write_idx_set(folder, n_train=12, n_test=6, seed=0):
    rng = np.random.default_rng(seed)
    arrays = {
        "train-images-idx3-ubyte.gz": rng.integers(0, 256, (n_train, 28, 28)),
        "train-labels-idx1-ubyte.gz": rng.integers(0, 10, n_train),
        "t10k-images-idx3-ubyte.gz": rng.integers(0, 256, (n_test, 28, 28)),
        "t10k-labels-idx1-ubyte.gz": rng.integers(0, 10, n_test),
    }
    folder.mkdir(parents=True, exist_ok=True)
    blobs = {}
    for name, arr in arrays.items():
        blobs[name] = gzip.compress(_idx_bytes(arr))
        (folder / name).write_bytes(blobs[name])
    return arrays, blobs


def test_mnist_download_checks_md5_and_parses_idx(tmp_path, monkeypatch):
    monkeypatch.setenv("LEAN_DATA", str(tmp_path / "cache"))
    arrays, blobs = _write_idx_set(tmp_path / "server")
    for name, blob in blobs.items():
        monkeypatch.setitem(ds.MNIST["archive_md5"], name, hashlib.md5(blob).hexdigest())
    monkeypatch.setitem(ds.MNIST, "urls", [(tmp_path / "server").as_uri() + "/"])
    assert not available("mnist")
    d = load("mnist")
    np.testing.assert_array_equal(d.x_train[..., 0], arrays["train-images-idx3-ubyte.gz"])
    np.testing.assert_array_equal(d.y_test, arrays["t10k-labels-idx1-ubyte.gz"])
    assert available("mnist")  # now cached
    # a corrupted cache file is caught by the checksum, with the file named
    cached = tmp_path / "cache" / "mnist" / "t10k-labels-idx1-ubyte.gz"
    cached.write_bytes(cached.read_bytes()[:-3])
    with pytest.raises(DataError, match="t10k-labels.*checksum"):
        load("mnist")


def test_download_with_wrong_checksum_leaves_no_file(tmp_path, monkeypatch):
    monkeypatch.setenv("LEAN_DATA", str(tmp_path / "cache"))
    _write_idx_set(tmp_path / "server")
    monkeypatch.setitem(ds.MNIST, "urls", [(tmp_path / "server").as_uri() + "/"])
    with pytest.raises(DataError, match="checksum mismatch"):
        load("mnist")
    assert not list((tmp_path / "cache").rglob("*.gz"))


def test_download_failure_says_where_to_put_files(tmp_path, monkeypatch):
    monkeypatch.setenv("LEAN_DATA", str(tmp_path / "cache"))
    monkeypatch.setitem(ds.MNIST, "urls", [(tmp_path / "nowhere").as_uri() + "/"])
    with pytest.raises(DataError, match="could not download.*put the file in"):
        load("mnist")


def test_fashion_content_checksum_rejects_other_data(tmp_path, monkeypatch):
    monkeypatch.setenv("LEAN_DATA", str(tmp_path))
    _write_idx_set(tmp_path / "fashion-mnist")
    with pytest.raises(DataError, match="content checksum mismatch"):
        load("fashion-mnist", download_ok=False)


def test_idx_parser_rejects_truncated_and_foreign_files():
    good = _idx_bytes(np.zeros((2, 3, 3)))
    with pytest.raises(DataError, match="truncated"):
        ds.parse_idx(good[:-1], "x")
    with pytest.raises(DataError, match="not an IDX"):
        ds.parse_idx(b"PK\x03\x04" + good[4:], "x")


def _cifar_tar(records_by_file, label_bytes):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, (x, y) in records_by_file.items():
            labels = np.stack([y] * label_bytes, axis=1).astype(np.uint8)
            pixels = x.transpose(0, 3, 1, 2).reshape(len(x), -1)
            data = np.concatenate([labels, pixels], axis=1).tobytes()
            info = tarfile.TarInfo(f"cifar-batches-bin/{name}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


@pytest.mark.parametrize("which", ["cifar10", "cifar100"])
def test_cifar_binary_archives(tmp_path, monkeypatch, which):
    monkeypatch.setenv("LEAN_DATA", str(tmp_path / "cache"))
    spec = ds.CIFAR10 if which == "cifar10" else ds.CIFAR100
    rng = np.random.default_rng(1)
    files = {name: (rng.integers(0, 256, (3, 32, 32, 3), dtype=np.uint8), rng.integers(0, 10, 3))
             for name in spec["train"] + spec["test"]}
    blob = _cifar_tar(files, spec["label_bytes"])
    server = tmp_path / "server"
    server.mkdir()
    filename = spec["url"].rsplit("/", 1)[1]
    (server / filename).write_bytes(blob)
    monkeypatch.setitem(spec, "url", (server / filename).as_uri())
    monkeypatch.setitem(spec, "md5", hashlib.md5(blob).hexdigest())
    d = load(which)
    assert d.x_train.shape == (3 * len(spec["train"]), 32, 32, 3)
    np.testing.assert_array_equal(d.x_test, files[spec["test"][0]][0])
    np.testing.assert_array_equal(d.y_test, files[spec["test"][0]][1])
    assert d.augment


def test_user_npz_and_h5_files(tmp_path):
    import h5py

    rng = np.random.default_rng(2)
    arrays = dict(x_train=rng.random((10, 6, 6)).astype(np.float32), y_train=np.arange(10) % 3,
                  x_test=rng.random((4, 6, 6)).astype(np.float32), y_test=np.array([0, 1, 2, 0]))
    np.savez(tmp_path / "mine.npz", **arrays)
    with h5py.File(tmp_path / "mine.h5", "w") as f:
        for k, v in arrays.items():
            f[k] = v
    for path in (tmp_path / "mine.npz", tmp_path / "mine.h5"):
        d = load(str(path))
        assert d.input_shape == (6, 6, 1) and d.num_classes == 3
    np.savez(tmp_path / "bad.npz", x_train=arrays["x_train"], y_train=arrays["y_train"])
    with pytest.raises(DataError, match="lacks arrays x_test, y_test"):
        load(str(tmp_path / "bad.npz"))
    np.savez(tmp_path / "shape.npz", **{**arrays, "y_train": np.arange(9)})
    with pytest.raises(DataError, match="y_train must be"):
        load(str(tmp_path / "shape.npz"))
    (tmp_path / "junk.h5").write_bytes(b"not hdf5")
    with pytest.raises(DataError, match="could not be read"):
        load(str(tmp_path / "junk.h5"))
    with pytest.raises(DataError, match="does not exist"):
        load(str(tmp_path / "missing.npz"))
    with pytest.raises(DataError, match="unknown dataset"):
        load("imagenet")


def test_crop_flip_is_seeded_and_keeps_content():
    x = np.arange(2 * 6 * 6 * 1, dtype=np.float32).reshape(2, 6, 6, 1) + 1
    a = random_crop_flip(x, np.random.default_rng(3), pad=2)
    b = random_crop_flip(x, np.random.default_rng(3), pad=2)
    np.testing.assert_array_equal(a, b)
    same = random_crop_flip(x, np.random.default_rng(3), pad=0, flip=False)
    np.testing.assert_array_equal(same, x)
    # every non-zero output pixel is a pixel of the same image
    for i in range(2):
        assert set(a[i][a[i] > 0].tolist()) <= set(x[i].ravel().tolist())


@pytest.mark.skipif(not available("fashion-mnist"), reason="dataset-fashion-mnist not installed")
def test_fashion_mnist_from_debian():
    d = load("fashion-mnist", download_ok=False)
    assert d.x_train.shape == (60000, 28, 28, 1) and d.x_test.shape == (10000, 28, 28, 1)
    assert np.bincount(d.y_test).tolist() == [1000] * 10
