"""The lecture's "same exercise on ImageNet": an image folder through AlexNet or VGG, the last hidden
layer (4096 units) projected to 2-D with PCA and t-SNE and coloured by folder, with the kNN accuracy
(as ``embeddings`` does for LeNet-5 on MNIST).

    python -m convforge viz embeddings --model vgg16 --weights vgg16-397923af.pth --images photos/ --out runs/viz

``--weights`` is a torchvision state dict (``torchvision.models.vgg16(weights="IMAGENET1K_V1")``
saves as ``vgg16-397923af.pth``; ``.npz`` and ``.safetensors`` also load, see ``nn.load_weights``).
"""
from __future__ import annotations

import os

import numpy as np

from .. import data, models, nn
from ._common import fmt_table
from .embeddings import analyse, last_hidden, plot


def embed_folder(model, paths, input_size=224, batch_size=8, log=None) -> np.ndarray:
    """(N, D) last hidden layer of model over the image files, read batch by batch (ImageNet transform)."""
    out = []
    for s in range(0, len(paths), batch_size):
        x = np.stack([data.load_imagenet_image(p, input_size) for p in paths[s:s + batch_size]])
        out.append(last_hidden(model, x, batch_size=batch_size))
        if log is not None:
            log(f"  {min(s + batch_size, len(paths))}/{len(paths)} images")
    return np.concatenate(out)


def run(images, model_name="vgg16", weights=None, out="runs/viz", input_size=224, batch_size=8, k=5, seed=0,
        methods=("pca", "tsne"), name="embedding_imagenet.png", print_fn=print) -> dict:
    """Embed an ImageFolder-style tree with a torchvision-layout model, project and score it.

    Parameters
    ----------
    images : folder with one subfolder per class (any image size; RGB, grayscale or with alpha)
    model_name : "alexnet" or a VGG ("vgg16", "vgg16_bn", ...), 1000 classes as torchvision's; or a
        convforge Network already built (weights then load into it)
    weights : path of a weights file (``nn.load_weights``), or None for random initial weights
    input_size : int, the centre crop's side (224 for ImageNet weights; smaller runs faster)
    batch_size, k, seed : images per forward pass, neighbours of the kNN accuracy, projection seed

    Returns
    -------
    dict from ``embeddings.analyse`` (dim, n, knn accuracies, projections) plus ``classes`` and ``files``
    (the PNG, and an .npz beside it with the embeddings (N, D), labels, class names and image files).

    Raises
    ------
    FileNotFoundError, ValueError
        a missing or empty folder, an unreadable image (naming the file), fewer than 2 images in a
        class, a weights file that does not match the model (naming the first key).
    """
    model = model_name if isinstance(model_name, nn.Module) else None
    if model is not None:
        model_name = getattr(model, "arch", type(model).__name__)
    elif model_name == "lenet5" or model_name not in models.names():
        raise ValueError(f"model {model_name!r} does not take ImageNet images; choose alexnet or a VGG "
                         f"({', '.join(n for n in models.names() if n != 'lenet5')})")
    smallest = 63 if model_name == "alexnet" else 32  # what the features' pools allow, as in torchvision
    if int(input_size) < smallest:
        raise ValueError(f"input_size {input_size} is too small for {model_name}: at least {smallest}")
    paths, y, classes = data.image_folder(images)
    counts = np.bincount(y)
    if len(classes) < 2 or counts.min() < 2:
        raise ValueError(f"image folder {str(images)!r} needs at least 2 classes with at least 2 images each for the "
                         f"kNN accuracy, got {dict(zip(classes, counts.tolist()))}")
    if model is None:
        model = models.build(model_name, input_size=int(input_size))
    if weights is not None:
        nn.load_weights(model, weights)
        src = f"weights {weights}"
    else:
        src = "random initial weights (no --weights: nothing learned, the picture shows the architecture alone)"
    print_fn(f"{model_name} with {src}; {len(paths)} images in {len(classes)} classes at {input_size}x{input_size}")
    h = embed_folder(model, paths, input_size, batch_size, log=None)
    folds = int(min(5, counts.min()))
    k = int(max(1, min(k, len(y) - int(np.ceil(len(y) / folds)))))
    res = analyse(h, y, None, k=k, seed=seed, methods=methods, folds=folds)
    res["classes"] = classes
    print_fn(f"last hidden layer: {h.shape[0]} images x {h.shape[1]} units")
    print_fn(f"{k}-nearest-neighbour accuracy (stratified {folds}-fold cross-validation; chance "
             f"{100 * res['chance']:.1f}%):")
    print_fn(fmt_table(("space", "kNN accuracy"), [(s, f"{100 * a:.2f}%") for s, a in res["knn"].items()]))
    os.makedirs(out, exist_ok=True)
    npz = os.path.join(os.fspath(out), os.path.splitext(name)[0] + ".npz")
    np.savez(npz, embeddings=h, labels=y, classes=np.array(classes), files=np.array([str(p) for p in paths]))
    print_fn(f"wrote {npz} (the {h.shape[1]}-D embeddings, labels, class names, files)")
    path = plot(res, y, out, name, f"{model_name} on {len(y)} images of {images}: last hidden layer, coloured by folder",
                class_names=classes)
    print_fn(f"wrote {path}")
    res["files"] = [path, npz]
    return res
