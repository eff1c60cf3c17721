"""Helpers shared by the pictures: a headless matplotlib, saving PNGs, running a model layer by layer,
and a trained LeNet-5 (from a checkpoint, or trained here in a few seconds on the offline digits)."""
from __future__ import annotations

import os
from pathlib import Path


def pyplot():
    """matplotlib.pyplot on the Agg backend (no display needed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


MAX_BYTES = 300 * 1024  # pictures go into the README's docs/: keep each small


def save(fig, out, name, dpi=90, max_bytes=MAX_BYTES) -> str:
    """Write fig as out/name (a PNG) and close it, lowering the resolution until the file is under
    max_bytes; returns the path."""
    plt = pyplot()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    path = out / name
    while True:
        fig.savefig(path, dpi=dpi)
        if max_bytes is None or path.stat().st_size <= max_bytes or dpi <= 30:
            break
        dpi = int(dpi * 0.85)
    plt.close(fig)
    return os.fspath(path)


def leaves(module, prefix=""):
    """(name, layer) for every leaf layer, in forward order."""
    if not module._modules:
        yield prefix, module
        return
    for name, child in module._modules.items():
        yield from leaves(child, f"{prefix}.{name}" if prefix else name)


def forward_collect(model, x):
    """Run model's leaves in order on x; returns [(name, layer, output)] (inputs to layer i+1 = output of i)."""
    was_training = model.training
    model.eval()
    rows = []
    try:
        for name, layer in leaves(model):
            x = layer.forward(x)
            rows.append((name, layer, x))
    finally:
        model.train(was_training)
    return rows


ARCH_LABELS = {"lenet5": "LeNet-5", "alexnet": "AlexNet", "vgg16": "VGG-16", "vgg": "VGG"}


def model_label(model) -> str:
    """A model's architecture as people write it (LeNet-5, VGG-16...), from its ``arch``."""
    arch = getattr(model, "arch", None)
    return ARCH_LABELS.get(arch, arch or type(model).__name__)


def trained_lenet5(checkpoint=None, *, epochs=6, seed=0, dataset=None, num_classes=10, log=print, activation="tanh",
                   data_name=None, data_path=None):
    """(model, dataset): the model of a checkpoint with the data it was trained on (at its input size, with
    its preprocessing; data_name and data_path override them), or a LeNet-5 trained here for a few epochs on
    data_name (default the digits: seconds)."""
    from .. import data, nn, models
    from ..train import fit

    if checkpoint is not None:
        model, meta = nn.load_checkpoint(checkpoint)
        ds = dataset if dataset is not None else data.load_for_checkpoint(meta, data_name, data_path)
        if log:
            log(f"loaded {checkpoint}: {model_label(model)} {meta.get('config', {})}, data {ds.name} "
                f"{'x'.join(map(str, ds.input_shape))}")
        return model, ds
    ds = dataset if dataset is not None else data.load_dataset(data_name or "digits", data_path)
    key = (epochs, seed, activation, num_classes, data_name, data_path) if dataset is None else None
    if key in _TRAINED:
        return _TRAINED[key]
    nn.manual_seed(seed)
    model = models.lenet5(activation=activation, num_classes=num_classes)
    res = fit(model, ds, epochs=epochs, seed=seed, progress=False, log=None)
    if log:
        log(f"trained lenet5 on {ds.name} for {epochs} epochs in {res['seconds']:.1f} s: "
            f"test accuracy {100 * res['test_accuracy']:.2f}%")
    if key is not None:
        _TRAINED[key] = (model, ds)
    return model, ds


_TRAINED = {}  # quick-trained models of this process, so that `viz all` trains once


def fmt_table(header, rows) -> str:
    """A plain fixed-width text table."""
    cells = [[str(c) for c in header]] + [[str(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    lines = ["  ".join(c.rjust(w) if i else c.ljust(w) for i, (c, w) in enumerate(zip(r, widths))) for r in cells]
    lines.insert(1, "-" * len(lines[0]))
    return "\n".join(lines)
