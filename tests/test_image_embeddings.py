"""`convforge viz embeddings --model ... --weights ... --images DIR`: an image folder through AlexNet / VGG."""
import numpy as np
import pytest
import torch

from convforge import data, models, nn
from convforge.__main__ import main
from convforge.viz import image_embeddings

PIL = pytest.importorskip("PIL.Image")


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """3 classes x 4 images of different sizes and modes (RGB, grayscale, RGBA; PNG and JPEG)."""
    root = tmp_path_factory.mktemp("images")
    rng = np.random.default_rng(0)
    colours = {"red": (200, 40, 40), "green": (40, 190, 60), "blue": (30, 60, 210)}
    for cls, rgb in colours.items():
        (root / cls).mkdir()
        for i in range(4):
            h, w = int(rng.integers(40, 90)), int(rng.integers(40, 90))
            a = np.clip(np.array(rgb) + rng.normal(0, 25, (h, w, 3)), 0, 255).astype(np.uint8)
            im = PIL.fromarray(a)
            if i == 1:
                im = im.convert("L")
            if i == 2:
                im = im.convert("RGBA")
            im.save(root / cls / f"{i}.{'jpg' if i == 3 else 'png'}")
    (root / "red" / "notes.txt").write_text("not an image")  # ignored: not an image extension
    return root


def test_image_folder_and_transform(folder):
    paths, labels, classes = data.image_folder(folder)
    assert classes == ["blue", "green", "red"] and len(paths) == 12
    assert np.bincount(labels).tolist() == [4, 4, 4]
    x = data.load_imagenet_image(paths[1], 64)  # a grayscale one
    assert x.shape == (3, 64, 64) and x.dtype == np.float32
    np.testing.assert_allclose(x[0] * 0.229 + 0.485, x[1] * 0.224 + 0.456, atol=1e-5)  # gray: R = G


def test_cli_alexnet_with_pth_weights_matches_torch(folder, tmp_path, capsys):
    from test_models import torch_alexnet

    torch.manual_seed(3)
    theirs = torch_alexnet(device=None).eval()  # random initial weights, as torchvision's layout
    weights = tmp_path / "alexnet.pth"
    torch.save(theirs.state_dict(), weights)
    assert main(["viz", "embeddings", "--model", "alexnet", "--weights", str(weights), "--images", str(folder),
                 "--input-size", "64", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "12 images in 3 classes" in out and "12 images x 4096 units" in out and "kNN accuracy" in out
    png = tmp_path / "embedding_imagenet.png"
    assert png.stat().st_size > 1000

    # the embedding is torch's: the same weights in the torch.nn AlexNet, up to its last hidden layer
    with np.load(tmp_path / "embedding_imagenet.npz") as z:
        h, labels, files = z["embeddings"], z["labels"], list(z["files"])
    paths, y, _ = data.image_folder(folder)
    assert files == [str(p) for p in paths] and np.array_equal(labels, y)
    x = torch.from_numpy(np.stack([data.load_imagenet_image(p, 64) for p in paths]))
    with torch.no_grad():
        ref = theirs.classifier[:6](torch.flatten(theirs.avgpool(theirs.features(x)), 1)).numpy()
    assert np.linalg.norm(h - ref) <= 1e-4 * np.linalg.norm(ref)


def test_narrow_vgg_bn_with_npz_weights(folder, tmp_path):
    """The same pipeline on a VGG-16-BN layout at 1/8 width (a built model may replace the name)."""
    from test_models import NARROW_VGG16

    build = lambda: models.vgg(NARROW_VGG16, hidden=64, batch_norm=True)  # noqa: E731
    nn.manual_seed(4)
    np.savez(tmp_path / "w.npz", **build().state_dict())
    res = image_embeddings.run(folder, build(), tmp_path / "w.npz", tmp_path, input_size=32,
                               print_fn=lambda *a: None)
    assert res["dim"] == 64 and res["n"] == 12 and set(res["proj"]) == {"pca", "tsne"}
    assert res["classes"] == ["blue", "green", "red"]
    assert all(0.0 <= a <= 1.0 for a in res["knn"].values())


def test_errors_name_the_flag(folder, tmp_path, capsys):
    empty = tmp_path / "empty"
    (empty / "cls").mkdir(parents=True)
    assert main(["viz", "embeddings", "--images", str(empty), "--out", str(tmp_path)]) == 2
    assert "--images:" in capsys.readouterr().err
    assert main(["viz", "embeddings", "--images", str(tmp_path / "nope"), "--out", str(tmp_path)]) == 2
    assert "--images:" in capsys.readouterr().err

    broken = tmp_path / "broken"
    for cls in ("a", "b"):
        (broken / cls).mkdir(parents=True)
        for i in range(2):
            PIL.new("RGB", (40, 40), (i * 50, 0, 0)).save(broken / cls / f"{i}.png")
    (broken / "a" / "2.jpg").write_bytes(b"garbage, not a JPEG")
    assert main(["viz", "embeddings", "--model", "alexnet", "--images", str(broken), "--input-size", "63",
                 "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "--images:" in err and "2.jpg" in err and "cannot read image file" in err

    np.savez(tmp_path / "w.npz", **{"features.0.weight": np.zeros((64, 3, 11, 11), np.float32)})
    assert main(["viz", "embeddings", "--model", "alexnet", "--weights", str(tmp_path / "w.npz"),
                 "--images", str(folder), "--input-size", "63", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "--weights:" in err and "'features.0.bias'" in err

    assert main(["viz", "embeddings", "--model", "vgg16", "--images", str(folder), "--input-size", "16",
                 "--out", str(tmp_path)]) == 2
    assert "--input-size:" in capsys.readouterr().err
    assert main(["viz", "embeddings", "--weights", "x.pth", "--out", str(tmp_path)]) == 2
    assert "--weights needs --images" in capsys.readouterr().err
