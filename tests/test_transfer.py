"""convforge.transfer: activations stored in a memory-mapped .npy equal the trunk's output, heads are
built right, and the digits 0-4 -> 5-9 demo runs end to end on a reduced budget."""
import json
import os

import numpy as np
import pytest

from convforge import data, models, nn, transfer


@pytest.fixture(scope="module")
def digits():
    return data.load_digits()


def test_split_trunk_and_heads():
    m = models.lenet5(num_classes=5)
    conv = transfer.split_trunk(m, "conv")
    assert isinstance(conv[-1], nn.Flatten) and len(conv) == 7
    hidden = transfer.split_trunk(m, "hidden")
    assert isinstance(hidden[-1], nn.Tanh) and len(hidden) == 11
    head = transfer.new_head(m, 7, "conv", "mlp")
    assert [l.out_features for l in head if isinstance(l, nn.Linear)] == [120, 84, 7]
    assert head.num_parameters() == 400 * 120 + 120 + 120 * 84 + 84 + 84 * 7 + 7
    assert transfer.new_head(m, 3, "hidden", "linear", 84).num_parameters() == 84 * 3 + 3
    with pytest.raises(ValueError):
        transfer.split_trunk(m, "middle")


def test_stored_activations_are_memory_mapped_and_exact(tmp_path, digits):
    nn.manual_seed(0)
    m = models.lenet5()
    trunk = transfer.split_trunk(m, "conv")
    x = digits.x_test[:70]
    a = transfer.store_activations(trunk, x, tmp_path / "acts.npy", batch_size=32, progress=False)
    assert isinstance(a, np.memmap) and a.shape == (70, 400) and a.dtype == np.float32
    h = np.ascontiguousarray(x)
    for layer in trunk:
        h = layer.forward(h)
    np.testing.assert_allclose(np.asarray(a), h, rtol=1e-6, atol=1e-6)
    np.testing.assert_array_equal(np.load(tmp_path / "acts.npy"), np.asarray(a))


def test_subset_per_class(digits):
    x, y = transfer.subset_per_class(digits.x_train, digits.y_train, 4, seed=1)
    assert len(y) == 40 and np.all(np.bincount(y) == 4)


def test_demo_reduced_budget(tmp_path, digits, capsys):
    small = data.Dataset(digits.x_train[:700], digits.y_train[:700], digits.x_test, digits.y_test, name="digits",
                         mean=digits.mean, std=digits.std)
    res = transfer.demo(tmp_path, pretrain_epochs=1, epochs=1, per_class=20, seed=0, progress=False, dataset=small)
    out = capsys.readouterr().out
    assert "whole network from scratch" in out and "mlp head on stored activations" in out
    for f in res["files"]:
        assert os.path.exists(f)
    assert os.path.getsize(tmp_path / "transfer.png") < 300 * 1024
    for name in ("activations_train.npy", "activations_test.npy", "labels_train.npy", "trunk_0-4.npz"):
        assert (tmp_path / name).exists()
    rows = {r["method"]: r for r in res["rows"]}
    assert set(rows) == {"mlp head on stored activations", "linear head on stored activations",
                         "whole network from scratch"}
    for r in rows.values():
        assert r["train_images"] == 100 and r["epochs"] == 1 and r["seconds"] > 0
        assert 0.0 <= r["test_accuracy"] <= 1.0
    assert rows["mlp head on stored activations"]["test_accuracy"] > 0.4  # chance is 0.2 (five classes)
    assert rows["whole network from scratch"]["trainable_params"] == models.lenet5(num_classes=5).num_parameters()
    saved = json.loads((tmp_path / "transfer.json").read_text())
    assert saved["rows"][0]["test_accuracy"] == res["rows"][0]["test_accuracy"]
    assert res["test_images"] == int(np.isin(digits.y_test, range(5, 10)).sum())


def test_head_on_checkpoint(tmp_path, digits):
    nn.manual_seed(0)
    m = models.lenet5()
    ck = nn.save_checkpoint(tmp_path / "ck.npz", m)
    res = transfer.head_on_checkpoint(ck, "digits", out=tmp_path / "t", epochs=1, per_class=5, heads=("linear",),
                                      progress=False, print_fn=lambda *a, **k: None)
    assert [r["method"] for r in res["rows"]] == ["linear head on stored activations", "whole network from scratch"]
    assert res["feature_dim"] == 400 and (tmp_path / "t" / "transfer.png").exists()
