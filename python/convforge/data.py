"""Data sets for the examples: scikit-learn's digits (offline) and MNIST's IDX files, a seeded batch iterator.

Images come back as float32 arrays of shape (N, 1, 32, 32), normalised to zero mean and unit
variance with the training split's statistics (kept in ``Dataset.mean`` / ``Dataset.std`` so
that predict can apply the same transform); labels as int64 arrays.
"""
from __future__ import annotations

import gzip
import os
import struct
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

MNIST_FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}
MNIST_MIRRORS = ("https://ossci-datasets.s3.amazonaws.com/mnist/", "https://storage.googleapis.com/cvdf-datasets/mnist/")
DEFAULT_CACHE = Path(os.environ.get("CONVFORGE_DATA", Path.home() / ".cache" / "convforge"))


@dataclass
class Dataset:
    """A train/test split; images N x 1 x 32 x 32 float32 (normalised), labels int64."""
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    name: str = ""
    mean: float = 0.0
    std: float = 1.0
    num_classes: int = 10
    notes: list = field(default_factory=list)

    @property
    def input_shape(self):
        return tuple(self.x_train.shape[1:])

    def info(self) -> dict:
        """What a checkpoint keeps of the data: name, normalisation, input shape and the preprocessing that
        ``predict`` repeats on a picture (a key of ``PREPROCESSING``)."""
        return {"dataset": self.name, "mean": self.mean, "std": self.std, "train": len(self.y_train),
                "test": len(self.y_test), "input_shape": list(self.input_shape), "notes": list(self.notes),
                "preprocess": _preprocess_kind(self.name)}


def normalize(x: np.ndarray, mean: float, std: float) -> np.ndarray:
    return ((np.asarray(x, np.float32) - np.float32(mean)) / np.float32(std)).astype(np.float32)


def _normalized(name, xtr, ytr, xte, yte, notes=()):
    mean, std = float(xtr.mean()), float(xtr.std())
    return Dataset(normalize(xtr, mean, std), ytr.astype(np.int64), normalize(xte, mean, std), yte.astype(np.int64),
                   name=name, mean=mean, std=std, notes=list(notes))


# -- resizing (bilinear, align_corners=False, as torch's F.interpolate) ---------------------------
def _interp_matrix(n_in: int, n_out: int) -> np.ndarray:
    m = np.zeros((n_out, n_in), np.float64)
    scale = n_in / n_out
    for i in range(n_out):
        src = max((i + 0.5) * scale - 0.5, 0.0)
        i0 = min(int(np.floor(src)), n_in - 1)
        i1 = min(i0 + 1, n_in - 1)
        f = src - i0
        m[i, i0] += 1 - f
        m[i, i1] += f
    return m


def resize(images: np.ndarray, size: int) -> np.ndarray:
    """Bilinear resize of (N, H, W) images to (N, size, size)."""
    images = np.asarray(images, np.float64)
    rh = _interp_matrix(images.shape[1], size)
    rw = _interp_matrix(images.shape[2], size)
    return np.matmul(np.matmul(rh, images), rw.T).astype(np.float32)  # two GEMMs, not einsum's 5-deep loop


def pad_to(images: np.ndarray, size: int) -> np.ndarray:
    """Zero-pad (N, H, W) images symmetrically to (N, size, size) (MNIST 28 -> 32 as in LeNet-5's paper)."""
    n, h, w = images.shape
    if h > size or w > size:
        raise ValueError(f"images of {h}x{w} do not fit in {size}x{size}")
    top, left = (size - h) // 2, (size - w) // 2
    out = np.zeros((n, size, size), images.dtype)
    out[:, top:top + h, left:left + w] = images
    return out


def resized(ds: Dataset, size: int) -> Dataset:
    """ds with every image resized bilinearly to size x size (``--input-size``); the normalisation is kept."""
    def r(x):
        n, c, h, w = x.shape
        return resize(x.reshape(n * c, h, w), size).reshape(n, c, size, size)

    return Dataset(r(ds.x_train), ds.y_train, r(ds.x_test), ds.y_test, name=ds.name, mean=ds.mean, std=ds.std,
                   num_classes=ds.num_classes, notes=list(ds.notes))


# -- digits -------------------------------------------------------------------------------------
def load_digits(test_fraction: float = 0.2, seed: int = 0) -> Dataset:
    """scikit-learn's 1,797 handwritten digits (8x8, 0..16) resized to 32x32, split stratified with a
    fixed seed (1,437 train / 360 test by default). Needs no network."""
    try:
        from sklearn.datasets import load_digits as _sk_load_digits
    except ImportError as e:
        raise ImportError("load_digits needs scikit-learn: pip install scikit-learn (or convforge[train])") from e
    d = _sk_load_digits()
    images = d.images.astype(np.float32) / 16.0
    labels = d.target.astype(np.int64)
    rng = np.random.default_rng(seed)
    test_idx = []
    for c in range(10):
        idx = np.flatnonzero(labels == c)
        rng.shuffle(idx)
        test_idx.extend(idx[:int(round(len(idx) * test_fraction))])
    test_mask = np.zeros(len(labels), bool)
    test_mask[test_idx] = True
    x = resize(images, 32)[:, None]
    return _normalized("digits", x[~test_mask], labels[~test_mask], x[test_mask], labels[test_mask])


# -- MNIST (IDX files) --------------------------------------------------------------------------
def _open_idx(path: Path) -> bytes:
    data = path.read_bytes()
    if data[:2] == b"\x1f\x8b":
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError) as e:
            raise ValueError(f"{path}: corrupt gzip data ({e})") from e
    return data


def read_idx(path, expected_magic: int | None = None) -> np.ndarray:
    """An IDX file (gzipped or raw) as a uint8 array; ValueError for a wrong magic number or truncation."""
    path = Path(path)
    data = _open_idx(path)
    if len(data) < 4:
        raise ValueError(f"{path}: truncated IDX file ({len(data)} bytes, no header)")
    magic = struct.unpack(">I", data[:4])[0]
    if expected_magic is not None and magic != expected_magic:
        raise ValueError(f"{path}: wrong magic number {magic} (0x{magic:08x}), expected {expected_magic} "
                         f"(0x{expected_magic:08x}); not an MNIST {'image' if expected_magic == 2051 else 'label'} file")
    if magic >> 8 != 0x08:
        raise ValueError(f"{path}: wrong magic number 0x{magic:08x}; only unsigned-byte IDX files (0x000008NN) are supported")
    ndim = magic & 0xFF
    header = 4 + 4 * ndim
    if len(data) < header:
        raise ValueError(f"{path}: truncated IDX header ({len(data)} bytes, need {header})")
    dims = struct.unpack(f">{ndim}I", data[4:header])
    need = int(np.prod(dims, dtype=np.int64))
    have = len(data) - header
    if have < need:
        raise ValueError(f"{path}: truncated IDX file: header promises {'x'.join(map(str, dims))} = {need} bytes of data, "
                         f"found {have}")
    return np.frombuffer(data, np.uint8, count=need, offset=header).reshape(dims)


def _find(folder: Path, stem: str):
    for name in (stem, stem + ".gz"):
        if (folder / name).exists():
            return folder / name
    return None


def download_mnist(folder=None) -> Path:
    """Download the four MNIST IDX .gz files into folder (default ~/.cache/convforge/mnist)."""
    folder = Path(folder) if folder is not None else DEFAULT_CACHE / "mnist"
    folder.mkdir(parents=True, exist_ok=True)
    for stem in MNIST_FILES.values():
        if _find(folder, stem):
            continue
        errors = []
        for mirror in MNIST_MIRRORS:
            try:
                with urllib.request.urlopen(mirror + stem + ".gz", timeout=60) as r:
                    blob = r.read()
                tmp = folder / (stem + ".gz.part")
                tmp.write_bytes(blob)
                tmp.replace(folder / (stem + ".gz"))
                break
            except OSError as e:
                errors.append(f"{mirror}: {e}")
        else:
            raise OSError(f"could not download {stem}.gz: " + "; ".join(errors))
    return folder


def _load_pair(folder: Path, split: str):
    img_p, lbl_p = _find(folder, MNIST_FILES[f"{split}_images"]), _find(folder, MNIST_FILES[f"{split}_labels"])
    if img_p is None or lbl_p is None:
        return None
    images, labels = read_idx(img_p, 2051), read_idx(lbl_p, 2049)
    if images.ndim != 3 or labels.ndim != 1:
        raise ValueError(f"{img_p}, {lbl_p}: expected N x H x W images and N labels, got {images.shape} and {labels.shape}")
    if len(images) != len(labels):
        raise ValueError(f"{img_p} holds {len(images)} images but {lbl_p} holds {len(labels)} labels")
    if labels.size and labels.max() > 9:
        raise ValueError(f"{lbl_p}: label {labels.max()} out of range 0..9")
    return images, labels


def load_mnist(path=None, download: bool = False, *, train_from_test: int | None = None) -> Dataset:
    """MNIST from the IDX files (``train-images-idx3-ubyte[.gz]`` and friends) in path
    (default ~/.cache/convforge/mnist, or $CONVFORGE_DATA/mnist), 28x28 padded to 32x32.

    download=True fetches missing files into that folder first; nothing is downloaded otherwise.
    train_from_test=N uses only the 10,000-image test files: the first N images for training,
    the rest for testing (also the fallback, with N=8000, when the training files are absent).
    """
    folder = Path(path) if path is not None else DEFAULT_CACHE / "mnist"
    if download:
        download_mnist(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"MNIST folder {str(folder)!r} does not exist; pass path= or download=True")
    notes = []
    test = _load_pair(folder, "test")
    train = None if train_from_test is not None else _load_pair(folder, "train")
    if test is None:
        raise FileNotFoundError(f"no MNIST test files in {str(folder)!r}: expected {MNIST_FILES['test_images']}[.gz] and "
                                f"{MNIST_FILES['test_labels']}[.gz]" + ("" if download else " (pass download=True to fetch them)"))
    if train is None:
        n = 8000 if train_from_test is None else int(train_from_test)
        if not 0 < n < len(test[1]):
            raise ValueError(f"train_from_test must be between 1 and {len(test[1]) - 1}, got {n}")
        if train_from_test is None:
            notes.append(f"no training files in {folder}: trained on the first {n} test images, tested on the rest")
        train = (test[0][:n], test[1][:n])
        test = (test[0][n:], test[1][n:])
    xtr = pad_to(train[0], 32)[:, None].astype(np.float32) / 255.0
    xte = pad_to(test[0], 32)[:, None].astype(np.float32) / 255.0
    return _normalized("mnist", xtr, train[1], xte, test[1], notes)


BUNDLED_MNIST = Path(__file__).resolve().parent / "_data" / "mnist"


def load_mnist_bundled(n_train: int = 8000) -> Dataset:
    """The real MNIST test set shipped inside the package (10,000 handwritten digits, 1.7 MB; CC BY-SA 3.0,
    see ``convforge/_data/mnist/README.md``), 28x28 padded to 32x32, needing no network.

    Parameters
    ----------
    n_train : int
        The first n_train images are the training split (validation is carved out of it by ``train.fit``),
        the rest the held-out test split: 8,000 / 2,000 by default.

    Returns
    -------
    Dataset
        Named "mnist-bundled", normalised with the training split's mean and standard deviation.

    Raises
    ------
    FileNotFoundError
        The package was installed without its data files.
    ValueError
        n_train is not between 1 and 9,999.
    """
    d = load_mnist(BUNDLED_MNIST, train_from_test=n_train)
    d.name = "mnist-bundled"
    return d


DATASETS = ("mnist-bundled", "digits", "mnist")


def load_dataset(name: str, path=None, download: bool = False, **kw) -> Dataset:
    """A data set by name: "mnist-bundled" (``load_mnist_bundled``), "digits" (``load_digits``) or "mnist"
    (``load_mnist`` from the folder path, downloading into it when download is true)."""
    if name == "mnist-bundled":
        return load_mnist_bundled(**kw)
    if name == "digits":
        return load_digits(**kw)
    if name == "mnist":
        return load_mnist(path, download=download, **kw)
    raise ValueError(f"unknown dataset {name!r}; available: {', '.join(DATASETS)}")


def load_for_checkpoint(meta: dict, name: str | None = None, path=None, download: bool = False) -> Dataset:
    """The data set a checkpoint was trained on (its ``meta["data"]``), at its input size; name and path
    override the stored data set and MNIST folder. Checkpoints without data information get digits."""
    dmeta = meta.get("data") or {}
    name = name or dmeta.get("dataset") or "digits"
    path = path or (meta.get("data_path") if name == dmeta.get("dataset") else None)
    ds = load_dataset(name, path, download=download)
    size = (dmeta.get("input_shape") or [None])[-1] or (meta.get("config") or {}).get("input_size")
    if size and size != ds.input_shape[-1]:
        ds = resized(ds, int(size))
    return ds


def random_shift(x: np.ndarray, max_shift: int, rng: np.random.Generator) -> np.ndarray:
    """Translate each image of x (N, C, H, W) by up to max_shift pixels in each direction; the uncovered
    border takes the batch's smallest value (the background of normalised digit images)."""
    if max_shift <= 0:
        return x
    n, c, h, w = x.shape
    m = int(max_shift)
    padded = np.full((n, c, h + 2 * m, w + 2 * m), x.min(), x.dtype)
    padded[:, :, m:m + h, m:m + w] = x
    dy = rng.integers(0, 2 * m + 1, size=n)
    dx = rng.integers(0, 2 * m + 1, size=n)
    out = np.empty_like(x)
    for i in range(n):
        out[i] = padded[i, :, dy[i]:dy[i] + h, dx[i]:dx[i] + w]
    return out


# -- batches ------------------------------------------------------------------------------------
def batches(x: np.ndarray, y: np.ndarray, batch_size: int, shuffle: bool = False, seed: int | None = None,
            drop_last: bool = False, rng: np.random.Generator | None = None):
    """Yield (x_batch, y_batch) as contiguous arrays; shuffle with rng, or a generator seeded with seed."""
    if batch_size <= 0:
        raise ValueError(f"batch_size must be positive, got {batch_size}")
    if len(x) != len(y):
        raise ValueError(f"x has {len(x)} samples but y has {len(y)}")
    n = len(x)
    if shuffle:
        order = (rng if rng is not None else np.random.default_rng(seed)).permutation(n)
    else:
        order = np.arange(n)
    stop = n - n % batch_size if drop_last else n
    for start in range(0, stop, batch_size):
        idx = order[start:start + batch_size]
        yield np.ascontiguousarray(x[idx]), np.ascontiguousarray(y[idx])


class BatchIterator:
    """Reusable epochs of shuffled batches: epoch e uses a permutation from seed and e, so runs repeat exactly."""

    def __init__(self, x, y, batch_size, shuffle=True, seed=0, drop_last=False):
        self.x, self.y, self.batch_size = x, y, int(batch_size)
        self.shuffle, self.seed, self.drop_last = shuffle, seed, drop_last
        self.epoch = 0

    def __len__(self):
        n = len(self.x)
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def __iter__(self):
        rng = np.random.default_rng([self.seed, self.epoch])
        self.epoch += 1
        return batches(self.x, self.y, self.batch_size, self.shuffle, rng=rng, drop_last=self.drop_last)


# -- single images (convforge predict) ----------------------------------------------------------
class BlankImageWarning(UserWarning):
    """An image whose ink barely differs from its background: a prediction on it means nothing."""


BLANK_CONTRAST = 0.1  # ink minus background, on the 0..1 scale, below which an image counts as blank
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".pgm", ".ppm", ".pbm")


def _gray_and_alpha(im):
    """(gray H x W float32 in [0, 1], alpha H x W in [0, 1] or None) for a Pillow image of any mode:
    16-bit and 32-bit integer images are scaled by their bit depth, palettes are looked up (with their
    transparent entry), colour is turned to luminance (ITU-R 601, as Pillow's convert("L"))."""
    mode = im.mode
    if mode == "P" or (mode in ("L", "RGB") and "transparency" in im.info):
        im = im.convert("RGBA")
        mode = "RGBA"
    if mode.startswith("I;16"):
        return np.asarray(im, np.float32) / 65535.0, None
    if mode == "I":
        a = np.asarray(im, np.float64)
        top = 255.0 if a.max(initial=0) <= 255 else 65535.0 if a.max() <= 65535 else float(a.max())
        return np.clip(a / top, 0, 1).astype(np.float32), None
    if mode == "F":
        a = np.nan_to_num(np.asarray(im, np.float32))
        return np.clip(a / (255.0 if a.max(initial=0) > 1 else 1.0), 0, 1), None
    if mode in ("1", "L"):
        return np.asarray(im.convert("L"), np.float32) / 255.0, None
    if mode in ("LA", "La", "PA"):
        la = np.asarray(im.convert("LA"), np.float32) / 255.0
        return la[..., 0], la[..., 1]
    if mode in ("RGBA", "RGBa"):
        rgba = im.convert("RGBA")
        return (np.asarray(rgba.convert("RGB").convert("L"), np.float32) / 255.0,
                np.asarray(rgba.getchannel("A"), np.float32) / 255.0)
    return np.asarray(im.convert("RGB").convert("L"), np.float32) / 255.0, None


def _border(img: np.ndarray) -> np.ndarray:
    """The pixels of the outer frame (1/20 of the shorter side, at least 1 pixel): the paper, for a digit."""
    h, w = img.shape
    b = max(1, min(h, w) // 20)
    return np.concatenate([img[:b].ravel(), img[-b:].ravel(), img[:, :b].ravel(), img[:, -b:].ravel()])


def load_image(path, *, warn: bool = True) -> np.ndarray:
    """Read a picture of a digit as the networks see digits: bright ink on a dark background.

    Parameters
    ----------
    path : str or path-like
        Any file Pillow reads (PNG, JPEG, BMP, GIF, TIFF, WebP, PGM...).
    warn : bool
        Issue a ``BlankImageWarning`` when the ink barely differs from the background.

    Returns
    -------
    numpy.ndarray
        H x W float32 in [0, 1], ink bright. On the way: the EXIF orientation is applied
        (``PIL.ImageOps.exif_transpose``, as a phone's photo is shown); 16-bit images are scaled by
        65535 and palette images looked up; a transparent background is composited onto white when the
        visible strokes are dark, onto black when they are light; colour becomes luminance; a light
        background (the median of the outer frame above 0.5: dark ink on paper) is inverted.

    Raises
    ------
    OSError
        The file is missing, unreadable or not an image (``PIL.UnidentifiedImageError``).
    ImportError
        Pillow is not installed.
    """
    try:
        from PIL import Image, ImageOps
    except ImportError as e:
        raise ImportError("reading images needs Pillow: pip install pillow (or convforge[train])") from e
    with Image.open(path) as im:
        im = ImageOps.exif_transpose(im)
        gray, alpha = _gray_and_alpha(im)
    if alpha is not None and alpha.min() < 1.0:
        seen = alpha > 0.5
        ink_is_dark = not seen.any() or float(np.median(gray[seen])) < 0.5
        gray = alpha * gray + (1.0 - alpha) * (1.0 if ink_is_dark else 0.0)
    if gray.size == 0:
        raise ValueError(f"{path}: the image has no pixels ({gray.shape[1]}x{gray.shape[0]})")
    if np.median(_border(gray)) > 0.5:
        gray = 1.0 - gray
    gray = np.ascontiguousarray(gray, np.float32)
    contrast = float(gray.max() - np.median(_border(gray)))
    if warn and contrast < BLANK_CONTRAST:
        import warnings

        warnings.warn(f"{path}: the image is blank or nearly so (ink differs from the background by {contrast:.3f} "
                      f"on a 0..1 scale, under {BLANK_CONTRAST}); its prediction means nothing",
                      BlankImageWarning, stacklevel=2)
    return gray


def image_files(paths):
    """The files named by paths, a folder standing for the image files in it (sorted by name; those whose
    suffix is in IMAGE_SUFFIXES); other paths come back as given, for the reader to report."""
    out = []
    for p in paths:
        p = Path(p)
        if p.is_dir():
            out.extend(sorted(q for q in p.iterdir() if q.is_file() and q.suffix.lower() in IMAGE_SUFFIXES))
        else:
            out.append(p)
    return out


def _resample(img: np.ndarray, width: int, height: int) -> np.ndarray:
    """img (H x W, float) resized to height x width with Pillow's antialiased Lanczos filter, clipped to [0, 1]."""
    from PIL import Image

    im = Image.fromarray(np.ascontiguousarray(img, np.float32), mode="F")
    return np.clip(np.asarray(im.resize((width, height), Image.LANCZOS), np.float32), 0.0, 1.0)


def _box_resize(img: np.ndarray, size: int) -> np.ndarray:
    from PIL import Image

    im = Image.fromarray(np.ascontiguousarray(img, np.float32), mode="F")
    return np.asarray(im.resize((size, size), Image.BOX), np.float32)


def _ink_crop(img: np.ndarray, ink: float = 0.2, noise: float = 0.1) -> np.ndarray:
    """The background (median of the frame) taken off and the strongest ink scaled to 1, values under noise
    set to 0 (paper grain, JPEG ringing), then cropped to the bounding box of the values of at least ink;
    an image without ink comes back as one zero pixel."""
    a = np.asarray(img, np.float32) - np.float32(np.median(_border(img)))
    top = float(a.max(initial=0.0))
    if top <= 0:
        return np.zeros((1, 1), np.float32)
    a = np.clip(a / top, 0.0, 1.0)
    a[a < noise] = 0.0
    ys, xs = np.nonzero(a >= ink)
    return a[ys.min():ys.max() + 1, xs.min():xs.max() + 1]


def mnist_style(img: np.ndarray, box: int = 20, field: int = 28, size: int = 32) -> np.ndarray:
    """Normalise a digit the way MNIST was made (LeCun et al.): crop to the ink, scale to fit a box x box
    square keeping the aspect ratio, place it in a field x field image with its centre of mass at the
    centre, pad to size x size (LeNet-5's 32x32).

    Parameters
    ----------
    img : numpy.ndarray
        H x W float in [0, 1], ink bright on a dark background (as ``load_image`` returns it).
    box, field, size : int
        20, 28 and 32 for MNIST as LeNet-5 reads it.

    Returns
    -------
    numpy.ndarray
        size x size float32 in [0, 1]; all zeros for an image without ink.
    """
    a = _ink_crop(img)
    h, w = a.shape
    scale = box / max(h, w)
    a = _resample(a, max(1, round(w * scale)), max(1, round(h * scale)))
    h, w = a.shape
    mass = float(a.sum())
    out = np.zeros((size, size), np.float32)
    if mass <= 0:
        return out
    cy = float((a.sum(1) * np.arange(h)).sum()) / mass
    cx = float((a.sum(0) * np.arange(w)).sum()) / mass
    # MNIST's centres of mass sit at pixel (14, 14) of the 28x28 field (mean over the test set: 13.99, 14.01)
    lo = (size - field) // 2
    top = int(np.clip(round(lo + field / 2 - cy), lo, lo + field - h))
    left = int(np.clip(round(lo + field / 2 - cx), lo, lo + field - w))
    out[top:top + h, left:left + w] = a
    return out


def digits_style(img: np.ndarray, size: int = 32) -> np.ndarray:
    """Normalise a digit the way scikit-learn's digits were made and load_digits upsamples them: crop to the
    ink, centre it in a square, average down to 8x8 (4x4 blocks of the 32x32 bitmap), then bilinear to size."""
    a = _ink_crop(img)
    h, w = a.shape
    side = max(h, w)
    sq = np.zeros((side, side), np.float32)
    sq[(side - h) // 2:(side - h) // 2 + h, (side - w) // 2:(side - w) // 2 + w] = a
    return resize(_box_resize(sq, 8)[None], size)[0]


PREPROCESSING = {
    "mnist": "MNIST's: crop to the ink, fit in 20x20 keeping the aspect ratio, centre of mass at the centre of "
             "28x28, pad to 32x32",
    "digits": "scikit-learn digits': crop to the ink, centre in a square, average down to 8x8, bilinear up to 32x32",
}


def _preprocess_kind(dataset: str) -> str:
    return "digits" if dataset == "digits" else "mnist"


def prepare_image(img: np.ndarray, dataset: str, mean: float, std: float, *, size: int = 32,
                  preprocess: bool = True) -> np.ndarray:
    """One picture (H x W in [0, 1], ink bright, as ``load_image`` returns it) as a network input.

    Parameters
    ----------
    img : numpy.ndarray
        H x W float image, ink bright on a dark background.
    dataset : str
        The data set the model learnt ("digits", "mnist", "mnist-bundled"): its pipeline is repeated,
        ``digits_style`` for digits, ``mnist_style`` for the MNIST ones.
    mean, std : float
        The training split's normalisation (``Dataset.mean``, ``Dataset.std``).
    size : int
        The model's input side; pictures are made at 32x32 and resized bilinearly when it differs.
    preprocess : bool
        False for images that are already like the training images (``--no-preprocess``): a 28x28 picture
        for an MNIST model is only padded to 32x32, any other is resized to 32x32, with no cropping or centring.

    Returns
    -------
    numpy.ndarray
        1 x 1 x size x size float32, normalised with mean and std.
    """
    img = np.asarray(img, np.float32)
    if img.ndim != 2:
        raise ValueError(f"prepare_image: img must be H x W, got shape {img.shape}")
    kind = _preprocess_kind(dataset)
    if preprocess:
        x = mnist_style(img) if kind == "mnist" else digits_style(img)
    elif kind == "mnist" and img.shape == (28, 28):
        x = pad_to(img[None], 32)[0]
    else:
        x = resize(img[None], 32)[0]
    x = x[None]
    if size != 32:
        x = resize(x, size)
    return normalize(x[:, None], mean, std)


# -- image folders (ImageNet-style inputs for AlexNet / VGG) -------------------------------------
IMAGENET_MEAN = (0.485, 0.456, 0.406)  # torchvision's normalisation of ImageNet inputs (RGB)
IMAGENET_STD = (0.229, 0.224, 0.225)
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp", ".gif")


def image_folder(root):
    """The images of an ImageFolder-style tree (``root/<class>/<image>``, as torchvision's ImageFolder).

    Parameters
    ----------
    root : str or os.PathLike, a folder with one subfolder per class

    Returns
    -------
    (paths, labels, classes): image paths (list of Path), int64 labels (N,) indexing classes, and the
    class names (the subfolders holding images, sorted).

    Raises
    ------
    FileNotFoundError
        root is not a folder.
    ValueError
        no subfolder holds a file with an image extension (``IMAGE_EXTENSIONS``).
    """
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"image folder {str(root)!r} does not exist or is not a folder")
    classes, paths, labels = [], [], []
    for sub in sorted(p for p in root.iterdir() if p.is_dir()):
        files = sorted(f for f in sub.iterdir() if f.is_file() and f.suffix.lower() in IMAGE_EXTENSIONS)
        if files:
            labels += [len(classes)] * len(files)
            classes.append(sub.name)
            paths += files
    if not paths:
        raise ValueError(f"image folder {str(root)!r} has no images: expected one subfolder per class holding "
                         f"image files ({', '.join(IMAGE_EXTENSIONS)})")
    return paths, np.asarray(labels, np.int64), classes


def load_imagenet_image(path, size: int = 224) -> np.ndarray:
    """One image file as a network input, as torchvision's ImageNet evaluation transform: RGB (grayscale
    and alpha converted), shorter side resized to size*256/224 (bilinear), centre crop size x size,
    scaled to [0, 1] and normalised with ``IMAGENET_MEAN`` / ``IMAGENET_STD``.

    Parameters
    ----------
    path : str or os.PathLike
    size : int, the crop's side (224 for ImageNet weights)

    Returns
    -------
    float32 array (3, size, size)

    Raises
    ------
    ValueError
        the file cannot be read as an image (naming it).
    ImportError
        Pillow is missing.
    """
    try:
        from PIL import Image, UnidentifiedImageError
    except ImportError as e:
        raise ImportError("reading images needs Pillow: pip install pillow (or convforge[viz])") from e
    try:
        with Image.open(path) as im:
            im = im.convert("RGB")
            w, h = im.size
            short = max(1, round(size * 256 / 224))
            scale = short / min(w, h)
            nw, nh = max(size, round(w * scale)), max(size, round(h * scale))
            im = im.resize((nw, nh), Image.BILINEAR)
            left, top = (nw - size) // 2, (nh - size) // 2
            a = np.asarray(im.crop((left, top, left + size, top + size)), np.float32) / 255.0
    except (UnidentifiedImageError, OSError, ValueError) as e:
        raise ValueError(f"cannot read image file {str(path)!r}: {e}") from None
    a = (a - np.asarray(IMAGENET_MEAN, np.float32)) / np.asarray(IMAGENET_STD, np.float32)
    return np.ascontiguousarray(a.transpose(2, 0, 1), np.float32)
