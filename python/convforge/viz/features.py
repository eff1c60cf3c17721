"""Filters and feature maps of a trained LeNet-5 on one input image, as image grids.

    python -m convforge viz features --out runs/viz                      # trains LeNet-5 on digits first (seconds)
    python -m convforge viz features --checkpoint runs/digits/best.npz --index 7 --out runs/viz
"""
from __future__ import annotations

import numpy as np

from .. import nn
from ._common import fmt_table, forward_collect, leaves, model_label, pyplot, save, trained_lenet5


def conv_layers(model):
    return [(n, l) for n, l in leaves(model) if isinstance(l, nn.Conv2d)]


def feature_maps(model, image):
    """[(name, layer, maps (K, P, Q))] after each conv layer's activation (the output of the layer that
    follows each Conv2d) for one image (C, H, W)."""
    rows = forward_collect(model, np.ascontiguousarray(image[None], np.float32))
    out = []
    for i, (name, layer, y) in enumerate(rows):
        if isinstance(layer, nn.Conv2d):
            nxt = rows[i + 1] if i + 1 < len(rows) and not isinstance(rows[i + 1][1], (nn.MaxPool2d, nn.AvgPool2d)) else rows[i]
            out.append((nxt[0], layer, np.array(nxt[2][0])))
    logits = np.array(rows[-1][2][0])
    return out, logits


def _grid(ax_list, images, cmap="gray", symmetric=False):
    for ax in ax_list:
        ax.axis("off")
    for ax, im in zip(ax_list, images):
        if symmetric:
            lim = float(np.abs(im).max()) or 1.0
            ax.imshow(im, cmap=cmap, vmin=-lim, vmax=lim)
        else:
            ax.imshow(im, cmap=cmap)


def run(out="runs/viz", checkpoint=None, index=None, epochs=6, seed=0, print_fn=print, name="features.png",
        model=None, dataset=None, data_name=None, data_path=None, max_maps=16, max_channels=6) -> dict:
    """The checkpoint's model on a test image of its own data set (data_name/data_path override it); model
    and dataset, when given, replace the checkpoint or the quick training. The picture shows the first two
    conv layers: at most max_maps filters and maps per row, max_channels rows of the second layer's filters."""
    if model is None:
        model, dataset = trained_lenet5(checkpoint, epochs=epochs, seed=seed, log=print_fn, dataset=dataset,
                                        data_name=data_name, data_path=data_path)
    ds = dataset
    if not conv_layers(model):
        raise ValueError(f"{model_label(model)} has no Conv2d layer: no filters or feature maps to show")
    if index is not None and not 0 <= index < len(ds.y_test):
        raise ValueError(f"index {index} is out of range: the {ds.name} test split has {len(ds.y_test)} images")
    if index is None:  # the first test image the model gets right
        from ..train import predict

        index = int(np.flatnonzero(predict(model, ds.x_test[:50])[0] == ds.y_test[:50])[0])
    image, label = ds.x_test[index], int(ds.y_test[index])
    maps, logits = feature_maps(model, image)
    convs = conv_layers(model)
    pred = int(np.argmax(logits))
    print_fn(f"test image {index}: label {label}, predicted {pred}")
    rows = []
    for (lname, layer), (aname, _, m) in zip(convs, maps):
        w = layer.weight.numpy()
        rows.append((lname, "x".join(map(str, w.shape)), f"{w.min():+.3f}", f"{w.max():+.3f}", f"{aname}",
                     "x".join(map(str, m.shape)), f"{m.mean():+.3f}", f"{np.abs(m).max():.3f}"))
    print_fn(fmt_table(("conv", "weight KxCxRxS", "w min", "w max", "maps after", "maps KxPxQ", "mean", "max |a|"), rows))
    for (aname, _, m) in maps:
        print_fn(f"  mean |activation| per map after {aname}: " + " ".join(f"{v:.2f}" for v in np.abs(m).mean(axis=(1, 2))))

    plt = pyplot()
    w1 = convs[0][1].weight.numpy()          # LeNet-5: (6, 1, 5, 5)
    w2 = convs[1][1].weight.numpy() if len(convs) > 1 else None  # LeNet-5: (16, 6, 5, 5)
    m1, m2 = maps[0][2], (maps[1][2] if len(maps) > 1 else None)
    ncol = max_maps

    def shown(n):
        return f"{n}" if n <= ncol else f"first {ncol} of {n}"

    rows2 = min(w2.shape[1], max_channels) if w2 is not None else 0
    nrow = 1 + 1 + 1 + rows2 + (1 if w2 is not None else 0)
    fig = plt.figure(figsize=(ncol * 0.75, nrow * 0.8 + 0.6))
    gs = fig.add_gridspec(nrow, ncol, hspace=0.35, wspace=0.15)
    r = 0
    ax = fig.add_subplot(gs[r, 0:2])
    ax.imshow(image[0], cmap="gray"), ax.axis("off")
    ax.set_title(f"{model_label(model)}, {ds.name} test image {index} (label {label}, pred {pred})", fontsize=7,
                 loc="left")
    r += 1
    k1 = min(ncol, w1.shape[0])
    axes = [fig.add_subplot(gs[r, j]) for j in range(k1)]
    _grid(axes, [w1[k, 0] for k in range(k1)], "RdBu_r", True)
    axes[0].set_title(f"{convs[0][0]} filters ({shown(w1.shape[0])} of {'x'.join(map(str, w1.shape[1:]))}; "
                      f"input channel 0)", fontsize=7, loc="left")
    r += 1
    k1 = min(ncol, m1.shape[0])
    axes = [fig.add_subplot(gs[r, j]) for j in range(k1)]
    _grid(axes, list(m1[:k1]))
    axes[0].set_title(f"feature maps after {convs[0][0]} ({shown(m1.shape[0])} of {m1.shape[1]}x{m1.shape[2]})",
                      fontsize=7, loc="left")
    r += 1
    if w2 is not None:
        k2 = min(ncol, w2.shape[0])
        for c in range(rows2):
            axes = [fig.add_subplot(gs[r, j]) for j in range(k2)]
            _grid(axes, [w2[k, c] for k in range(k2)], "RdBu_r", True)
            if c == 0:
                axes[0].set_title(f"{convs[1][0]} filters ({shown(w2.shape[0])} of {'x'.join(map(str, w2.shape[1:]))}; "
                                  f"row = input channel, {shown(w2.shape[1]) if w2.shape[1] > rows2 else w2.shape[1]} "
                                  f"shown)", fontsize=7, loc="left")
            r += 1
        k2 = min(ncol, m2.shape[0])
        axes = [fig.add_subplot(gs[r, j]) for j in range(k2)]
        _grid(axes, list(m2[:k2]))
        axes[0].set_title(f"feature maps after {convs[1][0]} ({shown(m2.shape[0])} of {m2.shape[1]}x{m2.shape[2]})",
                          fontsize=7, loc="left")
    fig.subplots_adjust(left=0.02, right=0.98, top=0.97, bottom=0.02)
    path = save(fig, out, name)
    print_fn(f"wrote {path}")
    return {"label": label, "prediction": pred, "maps": [(a, m.shape) for a, _, m in maps],
            "filters": [(n, tuple(l.weight.shape)) for n, l in convs], "files": [path]}
