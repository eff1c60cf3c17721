"""Data loading: digits split, MNIST's IDX format with its error cases, batches, preprocessing."""
import gzip
import struct
from pathlib import Path

import numpy as np
import pytest

from convforge import data

MNIST_DIR = Path(__file__).resolve().parents[2] / "shared" / "data" / "mnist"


def test_load_digits_fixed_split():
    d = data.load_digits()
    assert d.x_train.shape == (1438, 1, 32, 32) and d.x_test.shape == (359, 1, 32, 32)
    assert d.x_train.dtype == np.float32 and d.y_train.dtype == np.int64
    assert abs(d.x_train.mean()) < 1e-4 and abs(d.x_train.std() - 1) < 1e-3
    assert np.bincount(d.y_test, minlength=10).min() >= 35  # stratified: every class in the test split
    d2 = data.load_digits()
    np.testing.assert_array_equal(d.x_test, d2.x_test)
    np.testing.assert_array_equal(d.y_train, d2.y_train)


def test_resize_and_pad():
    img = np.arange(16, dtype=np.float32).reshape(1, 4, 4)
    up = data.resize(img, 8)
    import torch

    ref = torch.nn.functional.interpolate(torch.from_numpy(img[None]), size=(8, 8), mode="bilinear", align_corners=False)
    np.testing.assert_allclose(up, ref[0].numpy(), rtol=1e-5, atol=1e-5)
    p = data.pad_to(np.ones((2, 28, 28), np.float32), 32)
    assert p.shape == (2, 32, 32) and p.sum() == 2 * 28 * 28 and p[:, 2:30, 2:30].all()
    with pytest.raises(ValueError, match="do not fit"):
        data.pad_to(np.ones((1, 33, 33)), 32)


def _write_idx(path, arr, magic, gz):
    arr = np.asarray(arr, np.uint8)
    blob = struct.pack(">I", magic) + struct.pack(f">{arr.ndim}I", *arr.shape) + arr.tobytes()
    if gz:
        blob = gzip.compress(blob)
    path.write_bytes(blob)
    return path


def _fake_mnist(folder, n_train=30, n_test=20, gz=True, rng=None):
    rng = rng or np.random.default_rng(0)
    ext = ".gz" if gz else ""
    for split, n in (("train", n_train), ("t10k", n_test)):
        _write_idx(folder / f"{split}-images-idx3-ubyte{ext}", rng.integers(0, 256, (n, 28, 28)), 2051, gz)
        _write_idx(folder / f"{split}-labels-idx1-ubyte{ext}", np.arange(n) % 10, 2049, gz)


@pytest.mark.parametrize("gz", [True, False])
def test_load_mnist_from_idx(tmp_path, gz):
    _fake_mnist(tmp_path, gz=gz)
    d = data.load_mnist(tmp_path)
    assert d.x_train.shape == (30, 1, 32, 32) and d.x_test.shape == (20, 1, 32, 32)
    np.testing.assert_array_equal(d.y_test, np.arange(20) % 10)
    border = d.x_train[:, 0, :2, :]  # 28 -> 32 padding holds the background
    assert np.allclose(border, (0 - d.mean) / d.std)
    assert d.notes == []
    d2 = data.load_mnist(tmp_path, train_from_test=15)
    assert len(d2.y_train) == 15 and len(d2.y_test) == 5


def test_mnist_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        data.load_mnist(tmp_path / "nowhere")
    with pytest.raises(FileNotFoundError, match="t10k-images-idx3-ubyte"):
        data.load_mnist(tmp_path)
    _fake_mnist(tmp_path)
    # labels where the images should be: wrong magic
    (tmp_path / "t10k-images-idx3-ubyte.gz").write_bytes((tmp_path / "t10k-labels-idx1-ubyte.gz").read_bytes())
    with pytest.raises(ValueError, match="wrong magic number 2049.*expected 2051"):
        data.load_mnist(tmp_path)
    _fake_mnist(tmp_path)
    raw = gzip.decompress((tmp_path / "train-images-idx3-ubyte.gz").read_bytes())
    (tmp_path / "train-images-idx3-ubyte.gz").write_bytes(gzip.compress(raw[:-100]))
    with pytest.raises(ValueError, match="truncated"):
        data.load_mnist(tmp_path)
    (tmp_path / "train-images-idx3-ubyte.gz").write_bytes(gzip.compress(raw)[:50])
    with pytest.raises(ValueError, match="gzip|truncated"):
        data.load_mnist(tmp_path)
    (tmp_path / "train-images-idx3-ubyte.gz").write_bytes(b"\x00\x00")
    with pytest.raises(ValueError, match="truncated"):
        data.load_mnist(tmp_path)
    _fake_mnist(tmp_path, n_train=30)
    _write_idx(tmp_path / "train-labels-idx1-ubyte.gz", np.arange(29) % 10, 2049, True)
    with pytest.raises(ValueError, match="30 images but .* 29 labels"):
        data.load_mnist(tmp_path)


@pytest.mark.skipif(not MNIST_DIR.is_dir(), reason=f"no MNIST test files at {MNIST_DIR}")
def test_real_mnist_test_files():
    d = data.load_mnist(MNIST_DIR)  # only t10k there: first 8000 train, last 2000 test
    assert len(d.y_train) == 8000 and len(d.y_test) == 2000 and d.notes
    np.testing.assert_array_equal(d.y_train[:10], [7, 2, 1, 0, 4, 1, 4, 9, 5, 9])
    assert d.x_train.shape[1:] == (1, 32, 32)


def test_batches_seeded_and_complete():
    x = np.arange(10, dtype=np.float32).reshape(10, 1)
    y = np.arange(10)
    a = [yb.tolist() for _, yb in data.batches(x, y, 4, shuffle=True, seed=3)]
    b = [yb.tolist() for _, yb in data.batches(x, y, 4, shuffle=True, seed=3)]
    assert a == b and [len(t) for t in a] == [4, 4, 2]
    assert sorted(sum(a, [])) == list(range(10)) and sum(a, []) != list(range(10))
    assert [len(t) for _, t in data.batches(x, y, 4, drop_last=True)] == [4, 4]
    for xb, yb in data.batches(x, y, 3, shuffle=True, seed=1):
        np.testing.assert_array_equal(xb[:, 0], yb)
    it = data.BatchIterator(x, y, 4, seed=5)
    e1, e2 = [t.tolist() for _, t in it], [t.tolist() for _, t in it]
    assert e1 != e2 and len(it) == 3
    it2 = data.BatchIterator(x, y, 4, seed=5)
    assert [t.tolist() for _, t in it2] == e1
    with pytest.raises(ValueError, match="batch_size"):
        list(data.batches(x, y, 0))


def test_random_shift():
    x = np.zeros((3, 1, 8, 8), np.float32)
    x[:, :, 3:5, 3:5] = 1
    out = data.random_shift(x, 2, np.random.default_rng(0))
    assert out.shape == x.shape and np.all(out.sum(axis=(1, 2, 3)) == 4)
    assert data.random_shift(x, 0, np.random.default_rng(0)) is x


def test_prepare_image_matches_pipeline():
    from sklearn.datasets import load_digits as sk

    img8 = sk().images[2] / 16.0  # a 2 that fills the height of its 8x8 box, strongest ink 16/16
    assert img8.max() == 1 and img8[0].any() and img8[-1].any()
    big = np.kron(img8, np.ones((4, 4), np.float32))  # the same digit drawn at 32x32
    x = data.prepare_image(big, "digits", 0.0, 1.0)
    ref = data.resize(img8[None].astype(np.float32), 32)[:, None]
    np.testing.assert_allclose(x, ref, atol=0.1)  # values under 0.1 (1/16) are taken for paper grain
    wide = np.zeros((100, 300), np.float32)  # the same digit drawn small on a wide page
    wide[30:62, 200:232] = big
    np.testing.assert_allclose(data.prepare_image(wide, "digits", 0.0, 1.0), x, atol=1e-6)
    m = data.prepare_image(np.ones((40, 20), np.float32), "mnist", 0.0, 1.0)
    assert m.shape == (1, 1, 32, 32) and m[0, 0, :6].sum() == 0


def test_download_only_when_asked(tmp_path, monkeypatch):
    src = tmp_path / "src"
    src.mkdir()
    _fake_mnist(src)
    fetched = []

    class _Resp:
        def __init__(self, blob):
            self.blob = blob

        def read(self):
            return self.blob

        def __enter__(self):
            return self

        def __exit__(self, *a):
            return False

    def fake_urlopen(url, timeout=None):
        name = url.rsplit("/", 1)[1]
        fetched.append(name)
        return _Resp((src / name).read_bytes())

    monkeypatch.setattr(data.urllib.request, "urlopen", fake_urlopen)
    cache = tmp_path / "cache"
    with pytest.raises(FileNotFoundError):
        data.load_mnist(cache)
    assert fetched == []
    d = data.load_mnist(cache, download=True)
    assert len(fetched) == 4 and len(d.y_train) == 30
    data.load_mnist(cache, download=True)  # already there: nothing fetched again
    assert len(fetched) == 4
