"""Training loop, checkpoints, Ctrl-C, determinism and the command line; the accuracy bars (slow)."""
import json

import numpy as np
import pytest

from convforge import data, models, nn, train
from convforge.__main__ import main

MNIST_EPOCHS = 6


@pytest.fixture(scope="module")
def small_digits():
    d = data.load_digits()
    return data.Dataset(d.x_train[:256], d.y_train[:256], d.x_test[:100], d.y_test[:100], name="digits",
                        mean=d.mean, std=d.std)


def _run(ds, out, seed=0, epochs=2):
    nn.manual_seed(seed)
    m = models.lenet5()
    res = train.fit(m, ds, epochs=epochs, batch_size=32, seed=seed, out=out, progress=False, log=None, augment=1)
    return m, res


def test_fit_writes_outputs(small_digits, tmp_path):
    m, res = _run(small_digits, tmp_path)
    for name in ("best.npz", "last.npz", "metrics.json", "curves.png"):
        assert (tmp_path / name).stat().st_size > 0, name
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert [h["epoch"] for h in metrics["history"]] == [1, 2] and not metrics["interrupted"]
    assert metrics["history"][-1]["train_loss"] < metrics["history"][0]["train_loss"] * 1.5
    assert {"images_per_second", "val_accuracy", "val_loss", "lr"} <= set(metrics["history"][0])
    assert "test_accuracy" not in metrics["history"][0]  # the test split is used once, at the end
    assert metrics["split"] == {"train": 230, "val": 26, "test": 100}
    assert metrics["test_accuracy"] == res["test_accuracy"] and 0 <= res["test_accuracy"] <= 1
    last, meta = nn.load_checkpoint(tmp_path / "last.npz")
    assert meta["epoch"] == 2 and meta["data"]["dataset"] == "digits" and meta["data"]["preprocess"] == "digits"
    best, bmeta = nn.load_checkpoint(tmp_path / "best.npz")
    assert bmeta["epoch"] == res["best_epoch"] and bmeta["test_accuracy"] == res["test_accuracy"]
    assert bmeta["val_accuracy"] == max(h["val_accuracy"] for h in metrics["history"])
    for (k, a), b in zip(m.state_dict().items(), best.state_dict().values()):  # the model ends with the best weights
        np.testing.assert_array_equal(a, b, err_msg=k)


def test_validation_split_stratified_seeded_and_disjoint():
    x = np.arange(200, dtype=np.float32).reshape(200, 1)
    y = np.repeat(np.arange(10), 20)
    xt, yt, xv, yv = train.split_validation(x, y, 0.1, seed=5)
    assert len(yv) == 20 and np.all(np.bincount(yv) == 2) and len(yt) == 180
    assert not set(xv[:, 0]) & set(xt[:, 0]) and sorted(np.concatenate([xv, xt])[:, 0]) == list(range(200))
    assert np.array_equal(train.split_validation(x, y, 0.1, seed=5)[2], xv)
    assert not np.array_equal(train.split_validation(x, y, 0.1, seed=6)[2], xv)
    assert len(train.split_validation(x, y, 0.0)[3]) == 0
    with pytest.raises(ValueError, match="cannot hold out every one of the 10 classes"):
        train.split_validation(x, y, 0.02)
    with pytest.raises(ValueError, match=r"\[0, 1\)"):
        train.split_validation(x, y, 1.0)


def test_best_epoch_from_validation_and_early_stopping(small_digits, monkeypatch):
    scores = iter([0.5, 0.7, 0.6, 0.65, 0.69, 0.9])
    real = train.evaluate

    def fake_evaluate(model, x, y, batch_size=500):
        r = real(model, x, y, batch_size)
        if len(y) == 26:  # the validation split, not the test split (100)
            r["accuracy"] = next(scores)
        return r

    monkeypatch.setattr(train, "evaluate", fake_evaluate)
    nn.manual_seed(0)
    res = train.fit(models.lenet5(), small_digits, epochs=6, patience=3, progress=False, log=None)
    assert res["best_epoch"] == 2 and res["stopped_early"] and len(res["history"]) == 5
    assert res["best_val_accuracy"] == 0.7 and res["test_accuracy"] is not None


def test_training_is_deterministic(small_digits):
    a, ra = _run(small_digits, None, seed=3)
    b, rb = _run(small_digits, None, seed=3)
    assert [h["train_loss"] for h in ra["history"]] == [h["train_loss"] for h in rb["history"]]
    for (k, x), y in zip(a.state_dict().items(), b.state_dict().values()):
        np.testing.assert_array_equal(x, y, err_msg=k)
    c, _ = _run(small_digits, None, seed=4, epochs=1)
    assert not np.array_equal(a.state_dict()["0.weight"], c.state_dict()["0.weight"])


def test_ctrl_c_keeps_last_checkpoint(small_digits, tmp_path, monkeypatch):
    real_step, calls = train.train_step, []

    def step(*args):
        calls.append(1)
        if len(calls) == 12:  # during the second epoch (8 batches per epoch)
            raise KeyboardInterrupt
        return real_step(*args)

    monkeypatch.setattr(train, "train_step", step)
    with pytest.raises(KeyboardInterrupt):
        _run(small_digits, tmp_path, epochs=3)
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["interrupted"] and len(metrics["history"]) == 1
    _, meta = nn.load_checkpoint(tmp_path / "last.npz")
    assert meta["interrupted"] and (tmp_path / "best.npz").exists()
    assert not list(tmp_path.glob("*.tmp"))


def test_evaluate_and_predict(small_digits):
    nn.manual_seed(0)
    m = models.lenet5()
    ev = train.evaluate(m, small_digits.x_test, small_digits.y_test)
    assert 0 <= ev["accuracy"] <= 1 and ev["loss"] > 0 and ev["predictions"].shape == (100,)
    cls, prob = train.predict(m, small_digits.x_test[:5])
    assert cls.shape == (5,) and np.all((prob > 0) & (prob <= 1))
    cm = train.confusion_matrix([0, 1, 1, 2], [0, 1, 2, 2], 3)
    np.testing.assert_array_equal(cm, [[1, 0, 0], [0, 1, 1], [0, 0, 1]])


def test_cli_info_and_summary(capsys):
    assert main(["info"]) == 0
    assert "version" in capsys.readouterr().out
    assert main(["summary", "lenet5"]) == 0
    assert "total parameters: 61,706" in capsys.readouterr().out
    assert main(["summary", "vgg16"]) == 0
    assert "total parameters: 138,357,544" in capsys.readouterr().out
    assert main(["summary", "vgg16", "--input-size", "16"]) == 2
    assert "too small" in capsys.readouterr().err


def test_cli_train_evaluate_predict(tmp_path, capsys):
    from PIL import Image
    from sklearn.datasets import load_digits as sk

    out = tmp_path / "run"
    assert main(["train", "--dataset", "digits", "--epochs", "1", "--out", str(out), "--seed", "1"]) == 0
    text = capsys.readouterr().out
    assert "best validation accuracy" in text and "test accuracy of that model" in text
    assert main(["evaluate", str(out / "best.npz")]) == 0
    text = capsys.readouterr().out
    assert "accuracy" in text and "confusion matrix" in text and len(text.splitlines()) >= 12
    img = (255 - np.kron(sk().images[0], np.ones((4, 4))) * 15).astype(np.uint8)  # dark ink on white paper
    Image.fromarray(img).save(tmp_path / "zero.png")
    assert main(["predict", str(out / "best.npz"), str(tmp_path / "zero.png"), "--top", "3"]) == 0
    assert "class" in capsys.readouterr().out
    assert main(["evaluate", str(tmp_path / "missing.npz")]) == 2


@pytest.mark.slow
def test_digits_default_training_reaches_97_percent(tmp_path):
    """The README's main job: `convforge train --model lenet5 --dataset digits` with the defaults."""
    d = data.load_digits()
    nn.manual_seed(0)
    m = models.lenet5()
    # all 1,438 training images, the last epoch kept (no validation split: nothing is chosen on the test split);
    # with the default --val-fraction 0.1 (1,294 to train, best of 20 epochs on 144) seed 0 gives 96.66%
    res = train.fit(m, d, seed=0, augment=train.DEFAULTS["augment"], out=tmp_path, progress=False, log=None,
                    val_fraction=0.0)
    assert res["test_accuracy"] >= 0.97, res


@pytest.mark.slow
def test_mnist_8000_train_2000_test_reaches_97_percent():
    """The bundled MNIST (the default of `convforge train`): 7,200 to train, 800 to validate, 2,000 held out."""
    d = data.load_mnist_bundled()
    nn.manual_seed(0)
    m = models.lenet5()
    res = train.fit(m, d, epochs=MNIST_EPOCHS, batch_size=64, lr=2e-3, augment=0, seed=0, progress=False, log=None)
    acc = res["test_accuracy"]
    print(f"bundled MNIST 7200/800/2000: test accuracy {100 * acc:.2f}% in {res['seconds']:.1f} s")
    assert acc >= 0.97


def test_python_dash_m_entry_point():
    import os
    import subprocess
    import sys

    r = subprocess.run([sys.executable, "-m", "convforge", "summary", "alexnet", "--input-size", "32"],
                       capture_output=True, text=True, env=dict(os.environ), timeout=120)
    assert r.returncode == 2 and "alexnet" in r.stderr and "features.12" in r.stderr


def test_torchvision_init_keeps_vgg_signal():
    nn.manual_seed(0)
    m = models.vgg(cfg=(16, "M", 32, "M", "M", "M", "M"), num_classes=10, input_size=32, in_channels=1, hidden=64)
    train.torchvision_init(m, seed=1)
    conv, lin = m.features[0], m.classifier[0]
    assert abs(conv.weight.data.std() / np.sqrt(2 / (16 * 9)) - 1) < 0.15 and not conv.bias.data.any()
    assert abs(lin.weight.data.std() / 0.01 - 1) < 0.05 and not lin.bias.data.any()
    assert train.defaults_for("vgg16", "digits")["init"] == "torchvision"
    assert "init" not in train.defaults_for("lenet5", "digits")
