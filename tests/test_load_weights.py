"""nn.load_weights: torch .pth, .npz and .safetensors files, every key and shape checked."""
import sys
from collections import OrderedDict

import numpy as np
import pytest
import torch

from convforge import models, nn
from conftest import randn

CFG = (4, "M", 8, "M")


def _model():
    return models.vgg(CFG, num_classes=3, input_size=16, hidden=8, batch_norm=True, pool_size=2)


def _torch_state(seed=0):
    """A state dict with torchvision's keys for _model(), from torch tensors (buffers included)."""
    g = torch.Generator().manual_seed(seed)
    sd = OrderedDict()
    for k, v in _model().state_dict().items():
        t = torch.from_numpy(v)
        sd[k] = torch.randint(0, 9, (), generator=g) if k.endswith("num_batches_tracked") else \
            torch.randn(t.shape, generator=g)
    return sd


def _assert_loaded(model, sd):
    ours = model.state_dict()
    assert list(ours) == list(sd)
    for k, v in sd.items():
        np.testing.assert_array_equal(ours[k], v.numpy(), err_msg=k)
    assert ours["features.1.num_batches_tracked"].dtype == np.int64


def test_pth(tmp_path):
    sd = _torch_state()
    torch.save(sd, tmp_path / "w.pth")
    _assert_loaded(nn.load_weights(_model(), tmp_path / "w.pth"), sd)
    torch.save({"epoch": 3, "state_dict": {"module." + k: v for k, v in sd.items()}}, tmp_path / "ckpt.pt")
    _assert_loaded(nn.load_weights(_model(), tmp_path / "ckpt.pt"), sd)  # wrapped, DataParallel prefix


def test_npz_and_checkpoint(tmp_path):
    sd = _torch_state(1)
    np.savez(tmp_path / "w.npz", **{k: v.numpy() for k, v in sd.items()})
    _assert_loaded(nn.load_weights(_model(), tmp_path / "w.npz"), sd)
    m = nn.load_weights(_model(), tmp_path / "w.npz")
    nn.save_checkpoint(tmp_path / "c.npz", m)
    _assert_loaded(nn.load_weights(_model(), tmp_path / "c.npz"), sd)


def test_safetensors_without_torch(tmp_path, monkeypatch):
    st = pytest.importorskip("safetensors.numpy")
    sd = _torch_state(2)
    st.save_file({k: np.array(v.numpy()) for k, v in sd.items()}, str(tmp_path / "w.safetensors"))
    monkeypatch.setitem(sys.modules, "torch", None)  # import torch now fails
    _assert_loaded(nn.load_weights(_model(), tmp_path / "w.safetensors"), sd)


def test_pth_without_torch_is_a_clear_error(tmp_path, monkeypatch):
    torch.save(_torch_state(), tmp_path / "w.pth")
    monkeypatch.setitem(sys.modules, "torch", None)
    with pytest.raises(ImportError, match=r"w\.pth.*needs PyTorch.*pip install torch"):
        nn.load_weights(_model(), tmp_path / "w.pth")


def test_loaded_model_runs_like_torch_model(tmp_path, rng):
    # the BN running statistics from the file are used in eval mode
    from test_models import torch_vgg

    theirs = torch_vgg(CFG, 3, 8, batch_norm=True, pool=2)
    with torch.no_grad():
        for m in theirs.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.normal_()
                m.running_var.uniform_(0.5, 2)
    theirs.eval()
    torch.save(theirs.state_dict(), tmp_path / "w.pth")
    ours = nn.load_weights(_model(), tmp_path / "w.pth").eval()
    x = randn(rng, 2, 3, 19, 23)
    np.testing.assert_allclose(ours(x), theirs(torch.from_numpy(x)).detach().numpy(), rtol=1e-4, atol=1e-5)


def test_bad_files(tmp_path):
    sd = {k: v.numpy() for k, v in _torch_state().items()}
    missing = dict(sd)
    del missing["features.4.weight"]
    np.savez(tmp_path / "missing.npz", **missing)
    with pytest.raises(KeyError, match=r"missing\.npz.*no entry 'features\.4\.weight'.*1 of the model's"):
        nn.load_weights(_model(), tmp_path / "missing.npz")
    bad = dict(sd, **{"classifier.0.weight": np.zeros((8, 5), np.float32)})
    np.savez(tmp_path / "shape.npz", **bad)
    with pytest.raises(ValueError, match=r"entry 'classifier\.0\.weight' has shape \(8, 5\).*expects \(8, 32\)"):
        nn.load_weights(_model(), tmp_path / "shape.npz")
    np.savez(tmp_path / "extra.npz", **dict(sd, extra=np.zeros(2, np.float32)))
    with pytest.raises(KeyError, match="'extra' that vgg does not have"):
        nn.load_weights(_model(), tmp_path / "extra.npz")
    nn.load_weights(_model(), tmp_path / "extra.npz", strict=False)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        nn.load_weights(_model(), tmp_path / "nope.pth")
    (tmp_path / "w.h5").write_bytes(b"x")
    with pytest.raises(ValueError, match=r"extension '\.h5'"):
        nn.load_weights(_model(), tmp_path / "w.h5")
    (tmp_path / "junk.pth").write_bytes(b"not a zip")
    with pytest.raises(ValueError, match="junk.pth.*not a readable PyTorch"):
        nn.load_weights(_model(), tmp_path / "junk.pth")
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    with pytest.raises(ValueError, match="junk.npz.*not a readable"):
        nn.load_weights(_model(), tmp_path / "junk.npz")
