"""Transfer learning by stored activations: run a trained convolutional trunk once over a data set,
store its activations in a memory-mapped ``.npy`` on disk, then train only a new classifier head on
them; compared with training the whole network from scratch on the same small budget (the same
labelled images, epochs, batch size, optimiser and learning rate).

Offline demo: LeNet-5 trained on the digits 0-4 is the trunk; the head learns the digits 5-9.

    python -m convforge transfer demo --out runs/transfer
    python -m convforge transfer head --checkpoint runs/digits/best.npz --dataset digits --out runs/transfer
"""
from __future__ import annotations

import json
import os
import time
from pathlib import Path

import numpy as np

from . import data, models, nn
from .nn import _arrays


def _leaves(module):
    if not module._modules:
        yield module
        return
    for child in module._modules.values():
        yield from _leaves(child)


def _cut_index(layers, cut):
    if cut == "hidden":
        return max(i for i, l in enumerate(layers) if isinstance(l, nn.Linear))
    if cut == "conv":
        return max(i for i, l in enumerate(layers) if isinstance(l, nn.Flatten)) + 1
    raise ValueError(f"cut must be 'conv' or 'hidden', got {cut!r}")


def split_trunk(model, cut: str = "conv"):
    """The layers before the head: cut='conv' ends with the Flatten after the convolutional part
    (LeNet-5: 16x5x5 = 400 values), cut='hidden' stops before the last Linear (LeNet-5: the 84 units)."""
    layers = list(_leaves(model))
    return layers[:_cut_index(layers, cut)]


def new_head(model, num_classes: int, cut: str = "conv", kind: str = "mlp", in_features: int | None = None):
    """A freshly initialised head: kind='mlp' is the model's own layers after the cut (LeNet-5 with
    cut='conv': 400-120-84-classes), built anew with num_classes outputs; kind='linear' one Linear layer."""
    if kind == "linear":
        return nn.Sequential(nn.Linear(in_features, num_classes))
    if kind != "mlp":
        raise ValueError(f"head must be 'mlp' or 'linear', got {kind!r}")
    fresh = models.build(model.arch, **{**model.config, "num_classes": num_classes})
    layers = list(_leaves(fresh))
    return nn.Sequential(*layers[_cut_index(layers, cut):])


def store_activations(trunk, x, path, batch_size: int = 256, progress: bool = True, desc: str = "activations"):
    """Run trunk (a list of layers, in eval mode) over x once, writing its outputs into a memory-mapped
    float32 ``.npy`` at path; returns that file opened read-only with ``mmap_mode='r'``."""
    for l in trunk:
        l.train(False)
    probe = np.ascontiguousarray(x[:1], np.float32)
    for l in trunk:
        probe = l.forward(probe)
    dim = int(np.prod(probe.shape[1:]))
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    mm = np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=(len(x), dim))
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(x), desc=desc, unit="img", leave=False, dynamic_ncols=True)
    for s in range(0, len(x), batch_size):
        h = np.ascontiguousarray(x[s:s + batch_size], np.float32)
        for l in trunk:
            h = l.forward(h)
        mm[s:s + len(h)] = _arrays.to_host(h).reshape(len(h), dim)
        if bar is not None:
            bar.update(len(h))
    if bar is not None:
        bar.close()
    mm.flush()
    del mm
    return np.load(path, mmap_mode="r")


def subset_per_class(x, y, per_class, seed=0):
    """The first per_class images of each class after a seeded shuffle (None keeps everything)."""
    if per_class is None:
        return x, y
    rng = np.random.default_rng(seed)
    idx = np.concatenate([rng.permutation(np.flatnonzero(y == c))[:per_class] for c in np.unique(y)])
    idx.sort()
    return x[idx], y[idx]


def _train_seconds(res):
    return float(sum(h["epoch_seconds"] for h in res["history"]))


def compare(trunk_model, target: data.Dataset, out, *, epochs=2, batch_size=32, lr=2e-3, optimizer="adam",
            cut="conv", heads=("mlp", "linear"), seed=0, progress=True, log=print) -> dict:
    """New heads on stored activations vs the whole network from scratch, on the same target data and
    budget (images, epochs, batch size, optimiser, learning rate, seed).

    Times are training wall time (each head's includes running the trunk once over the training images
    and writing them to disk); accuracies are on target's test split."""
    from .train import fit

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    num_classes = int(max(target.y_train.max(), target.y_test.max()) + 1)
    budget = dict(epochs=epochs, batch_size=batch_size, lr=lr, optimizer=optimizer, seed=seed)

    trunk = split_trunk(trunk_model, cut)
    t0 = time.perf_counter()
    a_train = store_activations(trunk, target.x_train, out / "activations_train.npy", progress=progress,
                                desc="store train activations")
    t_extract = time.perf_counter() - t0
    t0 = time.perf_counter()
    a_test = store_activations(trunk, target.x_test, out / "activations_test.npy", progress=progress,
                               desc="store test activations")
    t_extract_test = time.perf_counter() - t0
    np.save(out / "labels_train.npy", target.y_train)
    np.save(out / "labels_test.npy", target.y_test)
    if log:
        log(f"stored activations (cut '{cut}'): train {a_train.shape} in {t_extract:.2f} s, test {a_test.shape} in "
            f"{t_extract_test:.2f} s, memory-mapped from {out}/activations_*.npy "
            f"({(a_train.nbytes + a_test.nbytes) / 2**20:.2f} MiB)")

    feats = data.Dataset(a_train, target.y_train, a_test, target.y_test, name=f"{target.name} activations")
    rows = []
    for kind in heads:
        nn.manual_seed(seed)
        head = new_head(trunk_model, num_classes, cut, kind, a_train.shape[1])
        r = fit(head, feats, progress=False, log=None, val_fraction=0.0, **budget)
        t = _train_seconds(r)
        desc = "new classifier (" + "-".join(str(l.out_features) for l in _leaves(head) if isinstance(l, nn.Linear)) + ")" \
            if kind == "mlp" else "linear"
        rows.append({"method": f"{kind} head on stored activations", "head": desc,
                     "trainable_params": head.num_parameters(), "train_images": len(target.y_train), "epochs": epochs,
                     "seconds": round(t_extract + t, 3),
                     "seconds_detail": {"store_activations": round(t_extract, 3), "head_training": round(t, 3)},
                     "test_accuracy": r["test_accuracy"]})

    nn.manual_seed(seed)
    scratch = models.build(trunk_model.arch, **{**trunk_model.config, "num_classes": num_classes})
    r_scr = fit(scratch, target, progress=False, log=None, val_fraction=0.0, **budget)
    rows.append({"method": "whole network from scratch", "trainable_params": scratch.num_parameters(),
                 "train_images": len(target.y_train), "epochs": epochs, "seconds": round(_train_seconds(r_scr), 3),
                 "test_accuracy": r_scr["test_accuracy"]})
    return {"budget": budget, "cut": cut, "feature_dim": int(a_train.shape[1]), "rows": rows,
            "test_images": len(target.y_test), "store_test_seconds": round(t_extract_test, 3)}


def _classes(ds: data.Dataset, classes, name):
    """ds restricted to classes, relabelled 0..len(classes)-1."""
    classes = list(classes)
    remap = np.full(int(max(ds.y_train.max(), ds.y_test.max())) + 1, -1, np.int64)
    remap[classes] = np.arange(len(classes))
    mtr, mte = np.isin(ds.y_train, classes), np.isin(ds.y_test, classes)
    return data.Dataset(ds.x_train[mtr], remap[ds.y_train[mtr]], ds.x_test[mte], remap[ds.y_test[mte]], name=name,
                        mean=ds.mean, std=ds.std, num_classes=len(classes))


def print_table(result, print_fn=print):
    rows = result["rows"]
    header = ("method", "trainable params", "train images", "epochs", "wall time (s)", "test accuracy")
    body = [(r["method"], f"{r['trainable_params']:,}", str(r["train_images"]), str(r["epochs"]), f"{r['seconds']:.3f}",
             f"{100 * r['test_accuracy']:.2f}%") for r in rows]
    widths = [max(len(x[i]) for x in [header] + body) for i in range(len(header))]

    def line(r):
        return "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths)))

    print_fn(line(header))
    print_fn("-" * len(line(header)))
    for b in body:
        print_fn(line(b))
    s = rows[-1]
    for h in rows[:-1]:
        d = h["seconds_detail"]
        print_fn(f"{h['method']} ({h['head']}): {100 * h['test_accuracy']:.2f}% in {h['seconds']:.3f} s "
                 f"(store activations {d['store_activations']:.3f} s + head {d['head_training']:.3f} s) = "
                 f"{100 * h['seconds'] / s['seconds']:.1f}% of from scratch's {s['seconds']:.3f} s "
                 f"({100 * s['test_accuracy']:.2f}%)")


def plot(result, path, title):
    from .viz._common import pyplot

    plt = pyplot()
    rows = result["rows"]
    names = [r["method"].replace(" on ", "\non ").replace(" from", "\nfrom") for r in rows]
    colors = ["tab:green", "tab:olive", "tab:blue", "tab:purple"][:len(rows) - 1] + ["tab:gray"]
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(10, 4))
    accs = [100 * r["test_accuracy"] for r in rows]
    a1.bar(names, accs, color=colors)
    for i, v in enumerate(accs):
        a1.text(i, v, f"{v:.1f}%", ha="center", va="bottom", fontsize=9)
    a1.set_ylim(0, 105), a1.set_ylabel("test accuracy (%)")
    secs = [r["seconds"] for r in rows]
    a2.bar(names, secs, color=colors)
    for i, v in enumerate(secs):
        a2.text(i, v, f"{v:.2f} s", ha="center", va="bottom", fontsize=9)
    a2.set_ylabel("training wall time (s), incl. storing activations")
    for ax in (a1, a2):
        ax.tick_params(axis="x", labelsize=8)
    b = result["budget"]
    fig.suptitle(f"{title}\nsame budget: {rows[0]['train_images']} images, {b['epochs']} epochs, batch {b['batch_size']}, "
                 f"{b['optimizer']} lr {b['lr']}; activations cut at '{result['cut']}' ({result['feature_dim']} values)",
                 fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return os.fspath(path)


def demo(out="runs/transfer", *, pretrain_epochs=6, epochs=2, per_class=None, batch_size=32, lr=2e-3, cut="conv",
         heads=("mlp", "linear"), seed=0, progress=True, print_fn=print, dataset=None) -> dict:
    """LeNet-5 trained on the digits 0-4 (the trunk), transferred to 5-9: head on stored activations vs
    from scratch with the same budget. per_class limits the labelled 5-9 training images per class."""
    from .train import fit

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    ds = dataset if dataset is not None else data.load_digits()
    source = _classes(ds, range(0, 5), "digits 0-4")
    target = _classes(ds, range(5, 10), "digits 5-9")
    tx, ty = subset_per_class(target.x_train, target.y_train, per_class, seed)
    target = data.Dataset(tx, ty, target.x_test, target.y_test, name="digits 5-9", mean=ds.mean, std=ds.std,
                          num_classes=5)
    nn.manual_seed(seed)
    trunk_model = models.lenet5(num_classes=5)
    r_src = fit(trunk_model, source, epochs=pretrain_epochs, batch_size=batch_size, lr=lr, seed=seed, progress=progress,
                log=None, val_fraction=0.0)
    pre_s, pre_acc = _train_seconds(r_src), r_src["test_accuracy"]
    print_fn(f"trunk: LeNet-5 trained on digits 0-4 ({len(source.y_train)} images, {pretrain_epochs} epochs) in "
             f"{pre_s:.2f} s, test accuracy on 0-4 {100 * pre_acc:.2f}% (a one-time cost, not in the table)")
    nn.save_checkpoint(out / "trunk_0-4.npz", trunk_model, test_accuracy=pre_acc, classes=[0, 1, 2, 3, 4])
    res = compare(trunk_model, target, out, epochs=epochs, batch_size=batch_size, lr=lr, cut=cut, heads=heads, seed=seed,
                  progress=progress, log=print_fn)
    res["pretrain"] = {"images": len(source.y_train), "epochs": pretrain_epochs, "seconds": round(pre_s, 3),
                       "test_accuracy": pre_acc}
    print_fn(f"transfer to digits 5-9 ({len(target.y_train)} labelled training images, {len(target.y_test)} test images):")
    print_table(res, print_fn)
    path = plot(res, out / "transfer.png", "LeNet-5 trunk trained on digits 0-4, transferred to 5-9")
    (out / "transfer.json").write_text(json.dumps(res, indent=2))
    res["files"] = [path, os.fspath(out / "transfer.json")]
    print_fn(f"wrote {path} and {out / 'transfer.json'}")
    return res


def head_on_checkpoint(checkpoint, dataset="digits", data_path=None, out="runs/transfer", *, epochs=2, per_class=None,
                       batch_size=32, lr=2e-3, cut="conv", heads=("mlp", "linear"), seed=0, progress=True, print_fn=print) -> dict:
    """Any trained checkpoint as the trunk, a data set (digits or MNIST) as the target."""
    trunk_model, meta = nn.load_checkpoint(checkpoint)
    ds = data.load_dataset(dataset, data_path)
    tx, ty = subset_per_class(ds.x_train, ds.y_train, per_class, seed)
    target = data.Dataset(tx, ty, ds.x_test, ds.y_test, name=ds.name, mean=ds.mean, std=ds.std)
    res = compare(trunk_model, target, out, epochs=epochs, batch_size=batch_size, lr=lr, cut=cut, heads=heads, seed=seed,
                  progress=progress, log=print_fn)
    print_fn(f"trunk {checkpoint} ({meta.get('arch')}), target {ds.name}:")
    print_table(res, print_fn)
    path = plot(res, Path(out) / "transfer.png", f"trunk {Path(checkpoint).name} transferred to {ds.name}")
    (Path(out) / "transfer.json").write_text(json.dumps(res, indent=2))
    res["files"] = [path, os.fspath(Path(out) / "transfer.json")]
    print_fn(f"wrote {path}")
    return res
