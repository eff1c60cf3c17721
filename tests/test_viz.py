"""convforge.viz: the pictures exist and the numbers behind them are right (pixel usage, output sizes,
receptive fields, Sobel against torch, embeddings far above chance)."""
import os

import numpy as np
import pytest

import convforge.functional as F
from convforge import data, models, nn
from convforge.viz import edges, embeddings, features, pixel_usage, receptive_field
from convforge.viz.cli import add_subcommands

MAX_PNG = 300 * 1024


def _png_ok(path):
    assert os.path.exists(path), path
    with open(path, "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"
    assert 0 < os.path.getsize(path) < MAX_PNG


# -- pixel usage --------------------------------------------------------------------------------
def test_pixel_usage_5x5_3x3_no_padding():
    c = pixel_usage.pixel_usage(5, 3, padding=0)
    assert c[0, 0] == 1 and c[2, 2] == 9
    tri = np.array([1, 2, 3, 2, 1])
    np.testing.assert_array_equal(c, np.outer(tri, tri))
    assert c.sum() == 3 * 3 * 9  # every one of the 3x3 windows uses 9 pixels


def test_pixel_usage_padding_evens_out():
    c0, c1 = pixel_usage.pixel_usage(5, 3, 0), pixel_usage.pixel_usage(5, 3, 1)
    assert (c1[0, 0], c1[0, 2], c1[2, 2]) == (4, 6, 9)
    assert c1.min() == 4 and c1.max() == 9 and c1.max() / c1.min() < c0.max() / c0.min()
    full = pixel_usage.padded_usage(5, 3, 1)  # padding cells included
    np.testing.assert_array_equal(full[1:-1, 1:-1], c1)
    assert full.sum() == 5 * 5 * 9


@pytest.mark.parametrize("n,f,p,s", [(5, 3, 0, 1), (7, 3, 1, 2), (8, 5, 2, 3), (6, 2, 0, 2)])
def test_pixel_usage_matches_torch_transposed_conv(n, f, p, s):
    torch = pytest.importorskip("torch")
    P = F.conv_output_size(n, f, s, p)
    ref = torch.nn.functional.conv_transpose2d(torch.ones(1, 1, P, P), torch.ones(1, 1, f, f), stride=s, padding=p,
                                               output_padding=n - ((P - 1) * s - 2 * p + f))
    np.testing.assert_array_equal(pixel_usage.pixel_usage(n, f, p, s), ref[0, 0].numpy().astype(np.int64))


def test_pixel_usage_run_writes_picture(tmp_path):
    r = pixel_usage.run(5, 3, 1, 1, out=tmp_path, print_fn=lambda *a, **k: None)
    _png_ok(r["files"][0])
    (a, b) = r["cases"]
    assert (a["output_size"], a["corner"], a["centre"]) == (3, 1, 9)
    assert (b["output_size"], b["corner"], b["centre"]) == (5, 4, 9)


# -- edges --------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def photo():
    return edges.load_image("china.jpg", max_side=96)


@pytest.mark.parametrize("padding,stride", [(0, 1), (1, 1), (1, 2), (2, 3)])
def test_filters_equal_torch_conv2d(photo, padding, stride):
    torch = pytest.importorskip("torch")
    out = edges.apply_filters(photo, padding=padding, stride=stride)
    x = torch.from_numpy(photo)[None, None]
    for name, k in edges.FILTERS.items():
        ref = torch.nn.functional.conv2d(x, torch.tensor(k, dtype=torch.float32)[None, None], padding=padding,
                                         stride=stride)[0, 0].numpy()
        assert out[name].shape == ref.shape
        np.testing.assert_allclose(out[name], ref, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(out["magnitude"], np.hypot(out["sobel_x"], out["sobel_y"]), rtol=1e-5, atol=1e-6)


def test_sobel_finds_a_vertical_step():
    img = np.zeros((8, 8), np.float32)
    img[:, 4:] = 1.0
    r = edges.apply_filters(img, ["sobel_x", "sobel_y"])
    assert np.all(r["sobel_y"] == 0)
    assert r["sobel_x"][:, 2:4].min() == 4.0 and np.all(r["sobel_x"][:, [0, 5]] == 0)


def test_user_kernel_and_size_rule(photo):
    k = edges.parse_kernel("0,-1,0; -1,5,-1; 0,-1,0")
    assert k.shape == (3, 3) and k[1, 1] == 5
    out = edges.apply_filters(photo, ["sobel_x"], {"sharpen": k})
    assert set(out) == {"sobel_x", "sharpen"}
    with pytest.raises(ValueError):
        edges.parse_kernel("1,2;3")
    H, W = photo.shape
    for p, s, P, Q, P2, Q2 in edges.size_table(H, W, 3):
        assert (P, Q) == (P2, Q2) == ((H + 2 * p - 3) // s + 1, (W + 2 * p - 3) // s + 1)


def test_edges_run_writes_pictures(tmp_path):
    lines = []
    r = edges.run("china.jpg", tmp_path, max_side=80, print_fn=lines.append)
    for f in r["files"]:
        _png_ok(f)
    assert r["outputs"]["sobel_x"] == (r["input_shape"][0] - 2, r["input_shape"][1] - 2)
    assert any("sobel_x" in l for l in lines)


def test_edges_from_a_user_file(tmp_path):
    from PIL import Image

    Image.fromarray((np.random.default_rng(0).random((20, 30)) * 255).astype(np.uint8)).save(tmp_path / "in.png")
    img = edges.load_image(tmp_path / "in.png")
    assert img.shape == (20, 30) and img.dtype == np.float32 and 0 <= img.min() and img.max() <= 1


# -- receptive field ----------------------------------------------------------------------------
def test_lenet5_sizes_and_receptive_fields():
    rows = [r for r in receptive_field.layer_rows(models.lenet5()) if r["type"] != "Linear"]
    assert [(r["size"], r["rf"], r["jump"]) for r in rows] == [(32, 1, 1), (28, 5, 1), (14, 6, 2), (10, 14, 2), (5, 16, 4)]


def test_vgg16_sizes_and_receptive_fields():
    rows = [r for r in receptive_field.layer_rows(models.vgg16()) if r["type"] != "Linear"]
    assert rows[-1]["size"] == 7 and rows[-1]["rf"] == 212 and rows[-1]["jump"] == 32
    assert rows[-2]["rf"] == 196  # conv5_3
    assert [r["size"] for r in rows if r["type"] == "MaxPool2d"] == [112, 56, 28, 14, 7]


def test_receptive_field_formula_agrees_with_backward():
    nn.manual_seed(0)
    m = models.lenet5(pooling="avg")
    expected = {r["name"]: r["rf"] for r in receptive_field.layer_rows(m)}
    for layer in ("0", "2", "3", "5"):
        assert receptive_field.empirical_receptive_field(m, layer) == expected[layer]


def test_receptive_field_run_writes_picture(tmp_path):
    r = receptive_field.run(tmp_path, ("lenet5", "vgg16"), print_fn=lambda *a, **k: None)
    _png_ok(r["files"][0])
    assert set(r["tables"]) == {"lenet5", "vgg16"}


# -- a quickly trained LeNet-5: features and embeddings ----------------------------------------
@pytest.fixture(scope="module")
def quick_model():
    """LeNet-5 (ReLU) trained for one epoch on 600 digits: seconds, and far above chance."""
    from convforge.train import fit

    ds = data.load_digits()
    small = data.Dataset(ds.x_train[:600], ds.y_train[:600], ds.x_test, ds.y_test, name="digits")
    nn.manual_seed(0)
    m = models.lenet5(activation="relu")
    fit(m, small, epochs=1, batch_size=16, lr=3e-3, progress=False, log=None)
    return m, small


def test_features_run(tmp_path, quick_model):
    m, ds = quick_model
    r = features.run(tmp_path, model=m, dataset=ds, index=3, print_fn=lambda *a, **k: None)
    _png_ok(r["files"][0])
    assert r["filters"] == [("0", (6, 1, 5, 5)), ("3", (16, 6, 5, 5))]
    assert r["maps"] == [("1", (6, 28, 28)), ("4", (16, 10, 10))]
    assert r["label"] == int(ds.y_test[3])


def test_embeddings_far_above_chance(quick_model):
    m, ds = quick_model
    h = embeddings.last_hidden(m, ds.x_test)
    assert h.shape == (len(ds.y_test), 84)
    res = embeddings.analyse(h, ds.y_test, methods=("pca",))
    assert res["chance"] < 0.12
    assert res["knn"]["original (84-D)"] > 0.75
    assert res["knn"]["pca (2-D)"] > 0.35
    assert res["info"]["pca"]["explained_variance"][0] > 0


def test_embeddings_run_with_tsne(tmp_path, quick_model):
    m, ds = quick_model
    r = embeddings.run(tmp_path, model=m, dataset=ds, max_points=150, print_fn=lambda *a, **k: None)
    _png_ok(r["files"][0])
    assert r["n"] == 150 and set(r["proj"]) == {"pca", "tsne"}
    assert r["knn"]["tsne (2-D)"] > 0.5


def test_knn_accuracy_on_separated_clusters():
    rng = np.random.default_rng(0)
    y = np.repeat(np.arange(4), 25)
    z = rng.normal(size=(100, 2)) * 0.1 + y[:, None] * 5.0
    assert embeddings.knn_accuracy(z, y) == 1.0


# -- command line -------------------------------------------------------------------------------
def test_cli_registers_and_runs(tmp_path, capsys):
    import argparse

    parser = argparse.ArgumentParser(prog="convforge")
    add_subcommands(parser.add_subparsers(dest="command", required=True))
    a = parser.parse_args(["viz", "pixel-usage", "--n", "5", "--f", "3", "-p", "1", "--out", str(tmp_path)])
    assert a.func(a) == 0
    _png_ok(tmp_path / "pixel_usage.png")
    assert "corner 1, centre 9" in capsys.readouterr().out
    for argv in (["viz", "edges"], ["viz", "receptive-field"], ["viz", "features"], ["viz", "embeddings"],
                 ["viz", "all"], ["transfer", "demo"], ["transfer", "head", "ck.npz"]):
        assert callable(parser.parse_args(argv).func)


# -- pictures follow the checkpoint ------------------------------------------------------------
def test_pictures_follow_the_checkpoint(tmp_path, capsys):
    """A VGG-style checkpoint trained on the bundled MNIST: features and embeddings load that data set (not the
    digits), label the model by its architecture, and cope with more filters than the picture has columns."""
    d = data.load_mnist_bundled()
    m = models.vgg(cfg=(24, "M", 20, "M", "M", "M", "M"), num_classes=10, input_size=32, in_channels=1, hidden=32)
    ck = tmp_path / "vgg.npz"
    nn.save_checkpoint(ck, m, data=d.info())
    lines = []
    r = features.run(tmp_path, checkpoint=ck, index=5, print_fn=lines.append)
    _png_ok(r["files"][0])
    assert r["label"] == int(d.y_test[5]) and r["filters"][0] == ("features.0", (24, 1, 3, 3))
    assert any("VGG" in str(s) and "mnist-bundled" in str(s) for s in lines), lines
    r = embeddings.run(tmp_path, checkpoint=ck, max_points=120, methods=("pca",), print_fn=lines.append)
    assert r["n"] == 120 and r["dim"] == 32
    with pytest.raises(ValueError, match="index 2000 is out of range.*2000 images"):
        features.run(tmp_path, checkpoint=ck, index=2000, print_fn=lines.append)
    r = features.run(tmp_path, checkpoint=ck, index=0, data_name="digits", print_fn=lines.append)  # --dataset overrides
    assert r["label"] == int(data.load_digits().y_test[0])


def test_model_without_the_named_layer_is_a_clear_error():
    convs_only = nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU())
    with pytest.raises(ValueError, match="no Linear layer"):
        embeddings.last_hidden(convs_only, np.zeros((2, 1, 8, 8), np.float32))
    mlp = nn.Sequential(nn.Flatten(), nn.Linear(64, 10))
    ds = data.Dataset(np.zeros((4, 1, 8, 8), np.float32), np.arange(4), np.zeros((4, 1, 8, 8), np.float32), np.arange(4))
    with pytest.raises(ValueError, match="no Conv2d layer"):
        features.run("unused", model=mlp, dataset=ds, index=0, print_fn=lambda *a: None)


def test_checkpoint_data_at_its_input_size():
    ds = data.load_for_checkpoint({"data": {"dataset": "digits", "input_shape": [1, 48, 48]}})
    assert ds.name == "digits" and ds.x_test.shape == (359, 1, 48, 48)
    assert data.load_for_checkpoint({}).x_test.shape == (359, 1, 32, 32)  # old checkpoints: digits
