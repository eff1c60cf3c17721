"""The last hidden layer (the input of the last Linear layer; LeNet-5's 84 units) over a test set, projected to 2-D with PCA and t-SNE
(scikit-learn), scattered by class; how well the classes separate, as k-nearest-neighbour accuracy
(stratified 5-fold cross-validation on the test embeddings) in 2-D and in the original space.

    python -m convforge viz embeddings --out runs/viz                   # trains LeNet-5 on digits first
    python -m convforge viz embeddings --checkpoint runs/digits/best.npz --out runs/viz
"""
from __future__ import annotations

import time

import numpy as np

from .. import nn
from ._common import fmt_table, leaves, model_label, pyplot, save, trained_lenet5


def last_hidden(model, x, batch_size=500) -> np.ndarray:
    """(N, D) input of the model's last Linear layer (LeNet-5: the 84 units after their activation)."""
    layers = [l for _, l in leaves(model)]
    linear = [i for i, l in enumerate(layers) if isinstance(l, nn.Linear)]
    if not linear:
        raise ValueError(f"{model_label(model)} has no Linear layer: the embeddings are the input of the last one")
    last = linear[-1]
    trunk = layers[:last]
    was = model.training
    model.eval()
    out = []
    try:
        for s in range(0, len(x), batch_size):
            h = np.ascontiguousarray(x[s:s + batch_size], np.float32)
            for l in trunk:
                h = l.forward(h)
            out.append(np.array(h))
    finally:
        model.train(was)
    return np.concatenate(out)


def knn_accuracy(z, y, k=5, folds=5, seed=0) -> float:
    """Mean accuracy of a k-NN classifier under stratified k-fold cross-validation over (z, y)."""
    from sklearn.model_selection import StratifiedKFold, cross_val_score
    from sklearn.neighbors import KNeighborsClassifier

    cv = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    return float(cross_val_score(KNeighborsClassifier(n_neighbors=k), z, y, cv=cv).mean())


def project(h, method, seed=0, perplexity=30.0):
    if method == "pca":
        from sklearn.decomposition import PCA

        p = PCA(n_components=2, random_state=seed)
        z = p.fit_transform(h)
        return z, {"explained_variance": [float(v) for v in p.explained_variance_ratio_]}
    if method == "tsne":
        from sklearn.manifold import TSNE

        z = TSNE(n_components=2, perplexity=min(perplexity, (len(h) - 1) / 3), init="pca", random_state=seed,
                 learning_rate="auto").fit_transform(h)
        return z, {}
    raise ValueError(f"unknown projection {method!r}; available: pca, tsne")


def analyse(h, y, x_raw=None, k=5, seed=0, methods=("pca", "tsne"), folds=5) -> dict:
    """Projections and kNN accuracies: 2-D per method, the original space, raw pixels when given, and chance."""
    res = {"dim": int(h.shape[1]), "n": int(len(y)), "k": k, "chance": float(np.bincount(y).max() / len(y)),
           "knn": {}, "proj": {}, "info": {}}
    res["knn"][f"original ({h.shape[1]}-D)"] = knn_accuracy(h, y, k, folds, seed=seed)
    if x_raw is not None:
        flat = x_raw.reshape(len(x_raw), -1)
        res["knn"][f"raw pixels ({flat.shape[1]}-D)"] = knn_accuracy(flat, y, k, folds, seed=seed)
    for m in methods:
        t0 = time.perf_counter()
        z, info = project(h, m, seed)
        res["proj"][m] = z
        res["info"][m] = dict(info, seconds=round(time.perf_counter() - t0, 2))
        res["knn"][f"{m} (2-D)"] = knn_accuracy(z, y, k, folds, seed=seed)
    return res


def plot(res, y, out, name, title, class_names=None):
    plt = pyplot()
    methods = list(res["proj"])
    fig, axes = plt.subplots(1, len(methods), figsize=(5.2 * len(methods), 4.8), squeeze=False)
    cmap = plt.get_cmap("tab10")
    for ax, m in zip(axes[0], methods):
        z = res["proj"][m]
        for c in np.unique(y):
            sel = y == c
            label = str(c) if class_names is None else str(class_names[int(c)])
            ax.scatter(z[sel, 0], z[sel, 1], s=7, color=cmap(int(c) % 10), label=label, alpha=0.8)
            cx, cy = np.median(z[sel], axis=0)
            ax.text(cx, cy, label, fontsize=12, weight="bold", ha="center", va="center",
                    bbox=dict(boxstyle="round,pad=0.15", fc="white", alpha=0.7, lw=0))
        acc = res["knn"][f"{m} (2-D)"]
        ax.set_title(f"{m.upper() if m == 'pca' else 't-SNE'} of the {res['dim']}-unit layer: "
                     f"{res['k']}-NN accuracy {100 * acc:.1f}%", fontsize=9)
        ax.set_xticks([]), ax.set_yticks([])
    axes[0][-1].legend(fontsize=7, markerscale=2, loc="center left", bbox_to_anchor=(1.0, 0.5), title="class")
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return save(fig, out, name)


def run(out="runs/viz", checkpoint=None, epochs=6, seed=0, k=5, split="test", print_fn=print,
        methods=("pca", "tsne"), name="embedding_tsne.png", model=None, dataset=None, max_points=None,
        data_name=None, data_path=None) -> dict:
    """The checkpoint's model on its own data set (data_name/data_path override it; ``_common.trained_lenet5``);
    model and dataset, when given, replace the checkpoint or the quick training; max_points keeps a
    stratified subset of the split (for quick runs)."""
    if model is None:
        model, dataset = trained_lenet5(checkpoint, epochs=epochs, seed=seed, log=print_fn, dataset=dataset,
                                        data_name=data_name, data_path=data_path)
    ds = dataset
    x, y = (ds.x_test, ds.y_test) if split == "test" else (ds.x_train, ds.y_train)
    if max_points is not None and max_points < len(y):
        from sklearn.model_selection import train_test_split

        keep, _ = train_test_split(np.arange(len(y)), train_size=max_points, stratify=y, random_state=seed)
        keep.sort()
        x, y = x[keep], y[keep]
    h = last_hidden(model, x)
    res = analyse(h, y, x, k=k, seed=seed, methods=methods)
    print_fn(f"last hidden layer over the {split} split: {h.shape[0]} images x {h.shape[1]} units")
    for m, info in res["info"].items():
        extra = f", explained variance {', '.join(f'{100 * v:.1f}%' for v in info['explained_variance'])}" \
            if "explained_variance" in info else ""
        print_fn(f"  {m}: {info['seconds']} s{extra}")
    print_fn(f"{k}-nearest-neighbour accuracy (stratified 5-fold cross-validation on the {split} split; "
             f"chance {100 * res['chance']:.1f}%):")
    print_fn(fmt_table(("space", "kNN accuracy"), [(s, f"{100 * a:.2f}%") for s, a in res["knn"].items()]))
    path = plot(res, y, out, name, f"{model_label(model)} on {ds.name}: last hidden layer of {len(y)} {split} images, coloured by class")
    print_fn(f"wrote {path}")
    res["files"] = [path]
    return res
