"""Output size and receptive field of every layer of LeNet-5 and VGG-16.

Sizes come from convforge.functional.conv_output_size, layer by layer. The receptive field r and the
jump j (distance in input pixels between neighbouring outputs) follow r_out = r_in + d (k - 1) j_in,
j_out = j_in s, starting from r = j = 1 at the input; ``empirical_receptive_field`` checks r by
back-propagating one output unit through the model's own backward.

    python -m convforge viz receptive-field --out runs/viz
"""
from __future__ import annotations

import numpy as np

from .. import functional as F, models, nn
from ._common import fmt_table, leaves, pyplot, save


def _geometry(layer):
    """(kernel, stride, padding, dilation) of a spatial layer, or None for the others."""
    if isinstance(layer, (nn.Conv2d, nn.MaxPool2d, nn.AvgPool2d)):
        pad = layer.padding
        if pad == "valid":
            pad = (0, 0)
        if pad == "same":
            pad = tuple((layer.dilation[i] * (layer.kernel_size[i] - 1)) // 2 for i in range(2))
        return layer.kernel_size[0], layer.stride[0], pad[0], getattr(layer, "dilation", (1, 1))[0]
    return None


def layer_rows(model, input_size=None):
    """[dict(name, type, k, s, p, d, channels, size, jump, rf)] for the input and every spatial layer.
    Fully connected layers see the whole input: listed with size 1 and rf equal to the input size."""
    c, h, _ = model.input_shape if input_size is None else (model.input_shape[0], input_size, input_size)
    n0 = h
    rows = [dict(name="input", type="input", k="", s="", p="", d="", channels=c, size=h, jump=1, rf=1)]
    size, jump, rf, chans = h, 1, 1, c
    for name, layer in leaves(model):
        g = _geometry(layer)
        if g is not None:
            k, s, p, d = g
            size = F.conv_output_size(size, k, s, p, d)
            rf = rf + d * (k - 1) * jump
            jump = jump * s
            if isinstance(layer, nn.Conv2d):
                chans = layer.out_channels
            rows.append(dict(name=name, type=type(layer).__name__, k=k, s=s, p=p, d=d, channels=chans, size=size,
                             jump=jump, rf=rf))
        elif isinstance(layer, nn.Linear):
            rows.append(dict(name=name, type="Linear", k="", s="", p="", d="", channels=layer.out_features, size=1,
                             jump="", rf=n0))
    return rows


def empirical_receptive_field(model, layer_name, input_size=None) -> int:
    """Height of the input region that one centre unit of layer_name's output depends on, by backward:
    all weights set positive so that no path cancels, grad_out one-hot at the centre unit. Max pooling
    sends the gradient to one position of each window, so this equals the formula only for models with
    average pooling (e.g. ``lenet5(pooling="avg")``); with max pooling it is a lower bound."""
    c, h, w = model.input_shape if input_size is None else (model.input_shape[0], input_size, input_size)
    saved = model.state_dict()
    try:
        model.load_state_dict({k: np.abs(v) + 0.01 for k, v in saved.items()})
        x = np.random.default_rng(0).random((1, c, h, w)).astype(np.float32) + 0.5
        upto = []
        for name, layer in leaves(model):
            upto.append(layer)
            if name == layer_name:
                break
        y = x
        for layer in upto:
            y = layer.forward(y)
        g = np.zeros_like(y)
        g[(0, 0) + tuple(s // 2 for s in y.shape[2:])] = 1.0
        for layer in reversed(upto):
            g = layer.backward(g)
        rows_touched = np.flatnonzero(np.abs(g[0]).sum(axis=(0, 2)) > 0)
        return int(rows_touched.max() - rows_touched.min() + 1)
    finally:
        model.load_state_dict(saved)
        model.zero_grad()


def run(out="runs/viz", model_names=("lenet5", "vgg16"), print_fn=print, name="receptive_field.png") -> dict:
    tables = {}
    for m in model_names:
        model = models.build(m)
        rows = layer_rows(model)
        tables[m] = rows
        print_fn(f"{m}: input {model.input_shape[0]}x{model.input_shape[1]}x{model.input_shape[2]}; size by "
                 f"conv_output_size, receptive field r and jump j by r += d(k-1)j, j *= s")
        print_fn(fmt_table(("layer", "type", "k", "s", "p", "output CxHxW", "jump", "receptive field"),
                           [(r["name"], r["type"], r["k"], r["s"], r["p"],
                             f"{r['channels']}x{r['size']}x{r['size']}" if r["type"] != "Linear" else f"{r['channels']}",
                             r["jump"], f"{r['rf']}x{r['rf']}") for r in rows]))
    plt = pyplot()
    fig, axes = plt.subplots(1, len(tables), figsize=(6.5 * len(tables), 4.2), squeeze=False)
    for ax, (m, rows) in zip(axes[0], tables.items()):
        sp = [r for r in rows if r["type"] != "Linear"]
        xs = np.arange(len(sp))
        labels = [("input" if r["name"] == "input" else f"{'conv' if r['type'] == 'Conv2d' else 'pool'} {r['name'].split('.')[-1]}")
                  for r in sp]
        ax.bar(xs - 0.2, [r["size"] for r in sp], 0.4, label="output size (H = W)", color="tab:blue")
        ax.bar(xs + 0.2, [r["rf"] for r in sp], 0.4, label="receptive field", color="tab:orange")
        for x, r in zip(xs, sp):
            ax.text(x - 0.2, r["size"], str(r["size"]), ha="center", va="bottom", fontsize=6)
            ax.text(x + 0.2, r["rf"], str(r["rf"]), ha="center", va="bottom", fontsize=6)
        ax.axhline(sp[0]["size"], color="gray", ls="--", lw=0.8)
        ax.set_xticks(xs)
        ax.set_xticklabels(labels, rotation=70, fontsize=7)
        ax.set_ylabel("pixels")
        ax.set_title(f"{m}: output size and receptive field per layer", fontsize=10)
        ax.legend(fontsize=8)
    fig.tight_layout()
    path = save(fig, out, name)
    print_fn(f"wrote {path}")
    return {"tables": tables, "files": [path]}
