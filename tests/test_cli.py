"""The command line's boundary: every bad argument is one line on stderr naming the flag, the value and
the rule, exit status 2, no traceback and nothing written; --help shows each default once."""
import argparse
import json

import numpy as np
import pytest

from convforge import _cli, models, nn
from convforge.__main__ import _run_folder, build_parser, main


def _one_line_error(capsys, argv, *needles):
    assert main(argv) == 2
    cap = capsys.readouterr()
    lines = cap.err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in cap.err, cap.err
    for n in needles:
        assert n in lines[0], (n, lines[0])
    return lines[0]


@pytest.mark.parametrize("argv, needles", [
    (["train", "--epochs", "0"], ["--epochs", "'0'", "positive integer"]),
    (["train", "--epochs", "-3"], ["--epochs", "'-3'", "positive integer"]),
    (["train", "--epochs", "two"], ["--epochs", "'two'", "not an integer"]),
    (["train", "--lr", "nan"], ["--lr", "'nan'", "finite"]),
    (["train", "--lr", "-0.1"], ["--lr", "'-0.1'", "above 0"]),
    (["train", "--lr", "inf"], ["--lr", "'inf'", "finite"]),
    (["train", "--augment", "-2"], ["--augment", "'-2'", "0 or more"]),
    (["train", "--batch-size", "0"], ["--batch-size", "'0'"]),
    (["train", "--momentum", "1.5"], ["--momentum", "'1.5'", "[0, 1)"]),
    (["train", "--weight-decay", "-1"], ["--weight-decay", "'-1'"]),
    (["train", "--val-fraction", "1"], ["--val-fraction", "'1'", "[0, 1)"]),
    (["train", "--patience", "0"], ["--patience", "'0'"]),
    (["train", "--model", "resnet"], ["--model", "resnet"]),
    (["train", "--threads", "0"], ["--threads"]),
    (["train", "--input-size", "0"], ["--input-size"]),
    (["train", "--dataset", "mnist", "--data", "no/such/folder"], ["--data", "no/such/folder", "no such folder"]),
    (["train", "--data", "no/such/folder"], ["--data", "--dataset mnist"]),
    (["train", "--model", "alexnet", "--input-size", "32"], ["--input-size", "32", "too small", "alexnet"]),
    (["predict", "x.npz", "a.png", "--top", "0"], ["--top", "'0'"]),
    (["summary", "vgg16", "--batch", "-1"], ["--batch", "'-1'"]),
    (["viz", "embeddings", "--epochs", "0"], ["--epochs", "'0'"]),
    (["viz", "pixel-usage", "--stride", "0"], ["--stride", "'0'"]),
    (["transfer", "demo", "--lr", "nan"], ["--lr", "'nan'"]),
])
def test_bad_argument_is_one_line(capsys, tmp_path, monkeypatch, argv, needles):
    monkeypatch.chdir(tmp_path)
    _one_line_error(capsys, argv, *needles)
    assert not list(tmp_path.rglob("*"))  # nothing written: no runs/, no metrics.json


def test_bad_checkpoints(capsys, tmp_path):
    text = tmp_path / "notes.npz"
    text.write_text("hello, not a zip")
    _one_line_error(capsys, ["evaluate", str(text)], "notes.npz", "not a readable .npz checkpoint")
    _one_line_error(capsys, ["predict", str(text), "x.png"], "not a readable .npz checkpoint")
    _one_line_error(capsys, ["evaluate", str(tmp_path)], "is a folder")
    _one_line_error(capsys, ["evaluate", str(tmp_path / "missing.npz")], "missing.npz", "does not exist")
    m = models.lenet5()
    nn.save_checkpoint(tmp_path / "ok.npz", m)
    last = list(m.state_dict())[-1]  # the last layer's bias
    with np.load(tmp_path / "ok.npz") as z:
        arrays = {k: z[k] for k in z.files if k != f"param/{last}"}
    np.savez(tmp_path / "cut.npz", **arrays)
    _one_line_error(capsys, ["evaluate", str(tmp_path / "cut.npz")], "cut.npz", "missing arrays", last)
    arrays[f"param/{last}"] = np.zeros(3, np.float32)
    np.savez(tmp_path / "shape.npz", **arrays)
    _one_line_error(capsys, ["evaluate", str(tmp_path / "shape.npz")], last, "shape")
    arrays["__meta__"] = np.array(["x"], dtype=object)
    np.savez(tmp_path / "pickled.npz", **arrays)
    _one_line_error(capsys, ["evaluate", str(tmp_path / "pickled.npz")], "pickled")


def test_out_folder_numbered_or_refused(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    a = argparse.Namespace(out=None, model="lenet5", dataset="digits", force=False)
    assert _run_folder(a)[0].as_posix() == "runs/lenet5-digits-1"
    (tmp_path / "runs" / "lenet5-digits-1").mkdir(parents=True)
    assert _run_folder(a)[0].as_posix() == "runs/lenet5-digits-2"
    run = tmp_path / "old"
    run.mkdir()
    (run / "metrics.json").write_text(json.dumps({}))
    a.out = str(run)
    assert _run_folder(a) == (None, 2)
    assert "--out" in capsys.readouterr().err
    _one_line_error(capsys, ["train", "--out", str(run), "--dataset", "digits"], "--out", "already holds a run", "--force")
    a.force = True
    assert _run_folder(a) == (run, None)


def test_help_shows_each_default_once(capsys):
    parser = build_parser()
    seen = 0

    def walk(p):
        nonlocal seen
        for action in p._actions:
            if isinstance(action, argparse._SubParsersAction):
                for sub in action.choices.values():
                    walk(sub)
            elif action.help:
                text = p._get_formatter()._get_help_string(action) if isinstance(p._get_formatter(), _cli.HelpFormatter) \
                    else action.help
                assert text.replace("%(default)s", "").lower().count("default") <= 1, (p.prog, action.dest, text)
                seen += 1

    walk(parser)
    assert seen > 50
    for cmd in (["train", "--help"], ["viz", "embeddings", "--help"], ["predict", "--help"]):
        assert main(cmd) == 0
        out = capsys.readouterr().out
        assert "(default: 6) (default" not in out and "default 6) (default: 6)" not in out
    assert main(["train", "--help"]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "alexnet: inputs of 63x63 or more" in out and "--val-fraction" in out


def test_version(capsys):
    import convforge

    assert main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"convforge {convforge.__version__}"


@pytest.mark.parametrize("model, size, opt", [("alexnet", 64, "adam"), ("vgg16", 32, "adam"), ("lenet5", 32, "adam")])
def test_train_builds_model_for_input_size_with_per_model_defaults(tmp_path, monkeypatch, capsys, model, size, opt):
    from convforge import train

    seen = {}

    def fake_fit(m, ds, **kw):
        seen.update(model=m, ds=ds, **kw)
        return {"best_val_accuracy": 0.5, "best_epoch": 1, "stopped_early": False, "test_accuracy": 0.5, "seconds": 0.0}

    monkeypatch.setattr(train, "fit", fake_fit)
    assert main(["train", "--model", model, "--dataset", "digits", "--out", str(tmp_path / "r")]) == 0
    assert seen["model"].config["input_size"] == size and seen["ds"].x_train.shape[1:] == (1, size, size)
    assert seen["optimizer"] == opt and seen["lr"] == train.defaults_for(model, "digits")["lr"]
    assert seen["epochs"] == 20 and seen["val_fraction"] == 0.1
    assert main(["train", "--model", model, "--dataset", "digits", "--out", str(tmp_path / "s"), "--input-size", "72",
                 "--lr", "0.5", "--epochs", "3"]) == 0
    assert seen["model"].config["input_size"] == 72 and seen["ds"].x_test.shape[1:] == (1, 72, 72)
    assert seen["lr"] == 0.5 and seen["epochs"] == 3
    capsys.readouterr()
