"""Reading users' pictures: image files of every common kind, MNIST-style preprocessing, and the
"done when" of issue 14: photo-style files of held-out MNIST digits read right by `convforge predict`."""
import re
import warnings

import numpy as np
import pytest
from PIL import Image

from convforge import data, models, nn, train
from convforge.__main__ import main

HELD_OUT = range(8000, 8020)  # MNIST test images 8000-8019: in the bundled set's held-out test split


@pytest.fixture(scope="module")
def mnist_raw():
    images = data.read_idx(data.BUNDLED_MNIST / "t10k-images-idx3-ubyte.gz", 2051)
    labels = data.read_idx(data.BUNDLED_MNIST / "t10k-labels-idx1-ubyte.gz", 2049)
    return images, labels


@pytest.fixture(scope="module")
def mnist_checkpoint(tmp_path_factory):
    """A LeNet-5 trained briefly on the bundled MNIST training split (the first 8,000 images)."""
    out = tmp_path_factory.mktemp("mnist_run")
    d = data.load_mnist_bundled()
    nn.manual_seed(0)
    m = models.lenet5()
    train.fit(m, d, epochs=2, batch_size=64, seed=0, augment=1, out=out, progress=False, log=None)
    return out / "best.npz"


def _canvas(digit28, seed, size=(240, 220), scale=170):
    """An MNIST digit (ink 255) drawn large at a random place of a bigger canvas: ink 0..255, background 0."""
    rng = np.random.default_rng(seed)
    ink = Image.fromarray(digit28).resize((scale, scale), Image.BICUBIC)
    canvas = Image.new("L", size, 0)
    canvas.paste(ink, (int(rng.integers(0, size[0] - scale)), int(rng.integers(0, size[1] - scale))))
    return np.asarray(canvas)


def _write(kind, ink, path):
    """ink (H x W uint8, 255 = ink) saved as a photo-style file of the given kind; returns the path."""
    paper = 255 - ink  # black ink on white paper
    rgb = np.stack([paper] * 3, -1)
    if kind == "rgb":
        Image.fromarray(rgb).save(path := path.with_suffix(".png"))
    elif kind == "rgba":  # black strokes, fully transparent paper
        rgba = np.zeros(ink.shape + (4,), np.uint8)
        rgba[..., 3] = ink
        Image.fromarray(rgba, "RGBA").save(path := path.with_suffix(".png"))
    elif kind == "gray16":
        Image.fromarray(paper.astype(np.uint16) * 257).save(path := path.with_suffix(".png"))
    elif kind == "jpeg":  # small and not square
        Image.fromarray(rgb).resize((90, 80), Image.BILINEAR).save(path := path.with_suffix(".jpg"), quality=80)
    elif kind == "palette":
        Image.fromarray(rgb).convert("P", palette=Image.ADAPTIVE, colors=16).save(path := path.with_suffix(".png"))
    elif kind == "exif":  # stored on its side, EXIF orientation 6 (rotate 90 degrees clockwise to show)
        exif = Image.Exif()
        exif[0x0112] = 6
        Image.fromarray(paper).transpose(Image.ROTATE_90).save(path := path.with_suffix(".jpg"), exif=exif, quality=90)
    elif kind == "white-on-black":
        Image.fromarray(ink).resize((600, 550), Image.BILINEAR).save(path := path.with_suffix(".png"))
    else:
        raise ValueError(kind)
    return path


KINDS = ("rgb", "rgba", "gray16", "jpeg", "palette", "exif", "white-on-black")


def test_photo_style_files_of_held_out_digits_read_right(mnist_checkpoint, mnist_raw, tmp_path, capsys):
    images, labels = mnist_raw
    paths, truth = [], {}
    for j, i in enumerate(HELD_OUT):
        p = _write(KINDS[j % len(KINDS)], _canvas(images[i], i), tmp_path / f"digit{i}")
        paths.append(str(p))
        truth[str(p)] = int(labels[i])
    assert main(["predict", str(mnist_checkpoint), *paths]) == 0
    out = capsys.readouterr().out
    got = dict(re.findall(r"^(.*): class (\d)", out, re.M))
    assert set(got) == set(truth), out
    right = sum(int(got[p]) == truth[p] for p in truth)
    assert right >= 19, out


def test_rgba_16bit_palette_read_as_the_8bit_rgb_picture(mnist_raw, tmp_path):
    ink = _canvas(mnist_raw[0][8001], 1)
    ref = data.load_image(_write("rgb", ink, tmp_path / "rgb"))
    assert ref.max() == pytest.approx(1.0, abs=0.01) and np.median(ref) < 0.01  # inverted: ink bright
    for kind in ("rgba", "gray16", "palette"):
        img = data.load_image(_write(kind, ink, tmp_path / kind))
        assert img.shape == ref.shape
        np.testing.assert_allclose(img, ref, atol=0.07 if kind == "palette" else 0.01, err_msg=kind)


def test_exif_orientation_applied(mnist_raw, tmp_path):
    ink = _canvas(mnist_raw[0][8002], 2)
    img = data.load_image(_write("exif", ink, tmp_path / "side"))
    assert img.shape == ink.shape  # turned upright: 220 x 240, not 240 x 220
    assert np.corrcoef(img.ravel(), ink.ravel())[0, 1] > 0.95


def test_light_strokes_on_transparency_composited_onto_black(tmp_path):
    rgba = np.zeros((40, 30, 4), np.uint8)
    rgba[10:30, 12:16] = 255  # an opaque white bar; the rest transparent (and black underneath)
    Image.fromarray(rgba, "RGBA").save(tmp_path / "w.png")
    img = data.load_image(tmp_path / "w.png")
    assert img[20, 13] == 1.0 and img[0, 0] == 0.0
    rgba[..., :3] = 255  # white everywhere; only alpha draws the bar: black would show nothing, white neither
    rgba[10:30, 12:16, :3] = 0
    Image.fromarray(rgba, "RGBA").save(tmp_path / "b.png")
    img = data.load_image(tmp_path / "b.png")
    assert img[20, 13] == 1.0 and img[0, 0] == 0.0


@pytest.mark.parametrize("value", [0, 255, 128])
def test_blank_image_warns(tmp_path, value):
    Image.fromarray(np.full((50, 50), value, np.uint8)).save(tmp_path / "blank.png")
    with pytest.warns(data.BlankImageWarning, match="blank"):
        data.load_image(tmp_path / "blank.png")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        data.load_image(tmp_path / "blank.png", warn=False)


def test_mnist_style_reproduces_mnist_from_a_large_picture(mnist_raw):
    images, _ = mnist_raw
    same = []
    for i in HELD_OUT:
        ref = data.pad_to(images[i][None].astype(np.float32) / 255, 32)[0]
        big = _canvas(images[i], i).astype(np.float32) / 255
        x = data.mnist_style(big)
        assert x.shape == (32, 32) and x.dtype == np.float32 and 0 <= x.min() and x.max() <= 1
        same.append(np.corrcoef(x.ravel(), ref.ravel())[0, 1])
        # the centre of mass is rounded to a whole pixel, as MNIST's was: within one pixel of the original
        near = max(np.corrcoef(np.roll(x, (dy, dx), (0, 1)).ravel(), ref.ravel())[0, 1]
                   for dy in (-1, 0, 1) for dx in (-1, 0, 1))
        assert near > 0.9, (i, near)
    assert np.mean(same) > 0.93, same


def test_mnist_style_geometry():
    bar = np.zeros((300, 200), np.float32)
    bar[20:120, 150:170] = 1.0  # 100 tall, 20 wide, off centre
    x = data.mnist_style(bar)
    ys, xs = np.nonzero(x > 0.5)
    assert ys.max() - ys.min() + 1 == 20 and 3 <= xs.max() - xs.min() + 1 <= 5  # aspect ratio kept: 20 x 4
    m = x.sum()
    cy, cx = (x.sum(1) * np.arange(32)).sum() / m, (x.sum(0) * np.arange(32)).sum() / m
    assert abs(cy - 16) <= 0.5 and abs(cx - 16) <= 0.5  # centre of mass at (14, 14) of 28x28, plus 2 of padding
    assert not data.mnist_style(np.zeros((10, 10), np.float32)).any()


def test_no_preprocess_only_pads_an_mnist_image(mnist_raw):
    img = mnist_raw[0][8003].astype(np.float32) / 255
    x = data.prepare_image(img, "mnist-bundled", 0.0, 1.0, preprocess=False)
    np.testing.assert_array_equal(x[0, 0], data.pad_to(img[None], 32)[0])
    y = data.prepare_image(img, "mnist-bundled", 0.5, 2.0, size=64)
    assert y.shape == (1, 1, 64, 64)


def test_predict_reports_bad_files_and_goes_on(mnist_checkpoint, mnist_raw, tmp_path, capsys):
    folder = tmp_path / "pics"
    folder.mkdir()
    _write("rgb", _canvas(mnist_raw[0][8004], 4), folder / "a")
    _write("jpeg", _canvas(mnist_raw[0][8005], 5), folder / "b")
    (folder / "notes.txt").write_text("not a picture, and not listed from a folder")
    (tmp_path / "broken.png").write_text("not a png")
    Image.fromarray(np.full((30, 30), 255, np.uint8)).save(tmp_path / "blank.png")
    rc = main(["predict", str(mnist_checkpoint), str(tmp_path / "broken.png"), str(folder), str(tmp_path / "nowhere.png"),
               str(tmp_path / "blank.png")])
    cap = capsys.readouterr()
    assert rc == 1
    assert cap.out.count(": class ") == 3  # a.png, b.jpg (from the folder) and the blank one
    assert "a.png: class" in cap.out and "b.jpg: class" in cap.out
    errors = [line for line in cap.err.splitlines() if line.startswith("error: ")]
    assert any("broken.png" in e for e in errors) and any("nowhere.png" in e for e in errors), cap.err
    assert "blank" in cap.err and "Traceback" not in cap.err
