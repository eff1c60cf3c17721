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
        return {"dataset": self.name, "mean": self.mean, "std": self.std, "train": len(self.y_train),
                "test": len(self.y_test), "input_shape": list(self.input_shape), "notes": list(self.notes)}


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
    return np.einsum("ph,nhw,qw->npq", rh, images, rw).astype(np.float32)


def pad_to(images: np.ndarray, size: int) -> np.ndarray:
    """Zero-pad (N, H, W) images symmetrically to (N, size, size) (MNIST 28 -> 32 as in LeNet-5's paper)."""
    n, h, w = images.shape
    if h > size or w > size:
        raise ValueError(f"images of {h}x{w} do not fit in {size}x{size}")
    top, left = (size - h) // 2, (size - w) // 2
    out = np.zeros((n, size, size), images.dtype)
    out[:, top:top + h, left:left + w] = images
    return out


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


def load_dataset(name: str, path=None, download: bool = False, **kw) -> Dataset:
    if name == "digits":
        return load_digits(**kw)
    if name == "mnist":
        return load_mnist(path, download=download, **kw)
    raise ValueError(f"unknown dataset {name!r}; available: digits, mnist")


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
def load_image(path) -> np.ndarray:
    """A picture file as a float array in [0, 1], H x W, with the ink bright on a dark background
    (a mostly light picture, i.e. dark ink on paper, is inverted)."""
    try:
        from PIL import Image
    except ImportError as e:
        raise ImportError("reading images needs Pillow: pip install pillow (or convforge[train])") from e
    with Image.open(path) as im:
        a = np.asarray(im.convert("L"), np.float32) / 255.0
    if a.mean() > 0.5:
        a = 1.0 - a
    return a


def _box_resize(img: np.ndarray, size: int) -> np.ndarray:
    from PIL import Image

    im = Image.fromarray(np.clip(img * 255.0, 0, 255).astype(np.uint8))
    return np.asarray(im.resize((size, size), Image.BOX), np.float32) / 255.0


def prepare_image(img: np.ndarray, dataset: str, mean: float, std: float) -> np.ndarray:
    """One H x W image in [0, 1] (ink bright) -> 1 x 1 x 32 x 32 input, as the dataset's pipeline makes it:
    digits: down to 8x8 (box filter), then the bilinear 8 -> 32 of load_digits;
    mnist: the ink's bounding box fitted in 20x20, centred in 28x28, padded to 32x32."""
    img = np.asarray(img, np.float32)
    if dataset == "digits":
        x = resize(_box_resize(img, 8)[None], 32)
    elif dataset == "mnist":
        ys, xs = np.nonzero(img > 0.1)
        if len(ys):
            img = img[ys.min():ys.max() + 1, xs.min():xs.max() + 1]
        h, w = img.shape
        side = max(h, w)
        sq = np.zeros((side, side), np.float32)
        sq[(side - h) // 2:(side - h) // 2 + h, (side - w) // 2:(side - w) // 2 + w] = img
        x = pad_to(pad_to(_box_resize(sq, 20)[None], 28), 32)
    else:
        x = resize(img[None], 32)
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
