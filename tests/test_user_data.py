"""A user's own dataset file: every way it can be wrong gets one clear `error:` line (or a warning for a layout
guess), through the `lean` command."""

import json
import zipfile

import numpy as np
import pytest
from click.testing import CliRunner

from lean.cli import main
from lean.data import load
from lean.errors import DataError


def _arrays(n=60, shape=(8, 8), classes=3, seed=0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, classes, n)
    x = (rng.random((n, *shape)) * 255).astype(np.uint8)
    return {"x_train": x[:40], "y_train": y[:40], "x_test": x[40:], "y_test": y[40:]}


def _train(tmp_path, name, **arrays):
    path = tmp_path / name
    if arrays:
        np.savez(path, **arrays)
    runner = CliRunner()
    return runner.invoke(main, ["train", "--net", "mlp", "--data", str(path), "--epochs", "1", "--batch-size", "16",
                                "--out", str(tmp_path / "out.h5"), "--force", "--json"], catch_exceptions=False)


def _refused(r, fragment):
    assert r.exit_code == 1, r.output
    assert fragment in r.output, r.output
    assert "Traceback" not in r.output and len(r.output.strip().splitlines()) == 1


@pytest.mark.parametrize("label,fragment", [
    (10**6, "labels run up to 1000000 but only 4 distinct values appear; number the classes 0..3"),
    (10**12, "labels run up to 1000000000000"),
    (-1, "labels must be 0..K-1; found -1"),
])
def test_stray_labels_are_refused_before_a_huge_model_is_built(tmp_path, label, fragment):
    arrays = _arrays()
    arrays["y_train"][0] = label
    _refused(_train(tmp_path, "stray.npz", **arrays), fragment)


def test_strings_where_numbers_belong(tmp_path):
    arrays = _arrays()
    _refused(_train(tmp_path, "s.npz", **{**arrays, "y_train": arrays["y_train"].astype(str)}),
             "labels must be integer class numbers")
    _refused(_train(tmp_path, "t.npz", **{**arrays, "x_test": arrays["x_test"].astype(str)}),
             "x_test must hold numbers (pixel values); got dtype <U")


def test_empty_corrupt_and_non_finite_files(tmp_path):
    arrays = _arrays()
    _refused(_train(tmp_path, "e.npz", **{**arrays, "x_test": arrays["x_test"][:0], "y_test": arrays["y_test"][:0]}),
             "y_test must be a non-empty (n,) array of labels")
    (tmp_path / "broken.npz").write_bytes(b"PK\x03\x04 this is not a zip archive")
    _refused(_train(tmp_path, "broken.npz"), "could not be read as npz")
    with zipfile.ZipFile(tmp_path / "cut.npz", "w") as z:
        z.writestr("x_train.npy", b"\x93NUMPY garbage")
    _refused(_train(tmp_path, "cut.npz"), "could not be read as npz")
    x = arrays["x_train"].astype(np.float32)
    x[3, 2, 2] = np.nan
    x[5, 1, 1] = np.inf
    _refused(_train(tmp_path, "nan.npz", **{**arrays, "x_train": x}), "x_train has 2 NaN or infinite pixel values")


def test_a_channels_first_array_is_transposed_with_a_warning(tmp_path):
    arrays = _arrays(shape=(3, 12, 12))  # (n, c, h, w)
    r = _train(tmp_path, "nchw.npz", **arrays)
    assert r.exit_code == 0, r.output
    warnings = [line for line in r.output.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 2 and "looks channels-first (n, c, h, w)" in warnings[0]
    summary = json.loads(r.output.strip().splitlines()[-1])
    assert summary["epochs"] == 1
    with pytest.warns(UserWarning, match="channels-first"):
        data = load(str(tmp_path / "nchw.npz"))
    assert data.input_shape == (12, 12, 3)


def test_data_errors_are_lean_errors(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        load(str(tmp_path / "none.npz"))
