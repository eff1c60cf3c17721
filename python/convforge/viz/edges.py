"""Edge detection with convforge.conv2d: classic 3x3 filters on a photograph, and the output size
under padding and stride from the output-size rule (checked against the shape conv2d returns).

    python -m convforge viz edges --out runs/viz                      # scikit-learn's china.jpg
    python -m convforge viz edges --image photo.png --kernel "0,-1,0;-1,5,-1;0,-1,0" --out runs/viz
"""
from __future__ import annotations

import numpy as np

from .. import functional as F
from ._common import fmt_table, pyplot, save

# Cross-correlation kernels (conv2d does not flip): sobel_x responds to a dark-to-bright step left to right.
FILTERS = {
    "sobel_x": [[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]],
    "sobel_y": [[-1, -2, -1], [0, 0, 0], [1, 2, 1]],
    "prewitt_x": [[-1, 0, 1], [-1, 0, 1], [-1, 0, 1]],
    "prewitt_y": [[-1, -1, -1], [0, 0, 0], [1, 1, 1]],
    "laplacian": [[0, 1, 0], [1, -4, 1], [0, 1, 0]],
}
SAMPLE_IMAGES = ("china.jpg", "flower.jpg")


def load_image(source="china.jpg", max_side=None) -> np.ndarray:
    """A grey-scale float32 image (H, W) in [0, 1]: one of scikit-learn's sample photographs
    (china.jpg, flower.jpg) or any file Pillow reads; max_side shrinks it (keeping the aspect)."""
    from PIL import Image

    if str(source) in SAMPLE_IMAGES:
        from sklearn.datasets import load_sample_image

        img = Image.fromarray(load_sample_image(str(source)))
    else:
        img = Image.open(source)
    img = img.convert("L")
    if max_side and max(img.size) > max_side:
        scale = max_side / max(img.size)
        img = img.resize((max(1, round(img.size[0] * scale)), max(1, round(img.size[1] * scale))), Image.BILINEAR)
    return np.asarray(img, dtype=np.float32) / 255.0


def parse_kernel(text: str) -> np.ndarray:
    """'a,b,c;d,e,f;g,h,i' (rows separated by ';') as a float32 matrix."""
    rows = [[float(v) for v in r.replace(" ", ",").split(",") if v] for r in text.strip().split(";") if r.strip()]
    if not rows or any(len(r) != len(rows[0]) for r in rows):
        raise ValueError(f"kernel {text!r}: rows must have the same number of values, e.g. '1,0,-1;2,0,-2;1,0,-1'")
    return np.array(rows, np.float32)


def kernel_bank(names=None, extra=None):
    """(names, weight (K, 1, f, f)) for the named filters plus user kernels {name: matrix} of the same size."""
    names = list(FILTERS) if names is None else list(names)
    for n in names:
        if n not in FILTERS:
            raise ValueError(f"unknown filter {n!r}; available: {', '.join(FILTERS)}")
    mats = [np.array(FILTERS[n], np.float32) for n in names]
    for n, k in (extra or {}).items():
        names.append(n)
        mats.append(np.asarray(k, np.float32))
    shapes = {m.shape for m in mats}
    if len(shapes) != 1:
        raise ValueError(f"all kernels must have the same size to run as one convolution, got {sorted(shapes)}")
    return names, np.ascontiguousarray(np.stack(mats)[:, None])


def apply_filters(image, names=None, extra=None, stride=1, padding=0):
    """Every filter at once as one conv2d over the (1, 1, H, W) image: {name: (P, Q) response},
    plus 'magnitude' = sqrt(sobel_x^2 + sobel_y^2) when both Sobel filters are present."""
    names, w = kernel_bank(names, extra)
    x = np.ascontiguousarray(image, np.float32)[None, None]
    y = F.conv2d(x, w, stride=stride, padding=padding)
    out = {n: y[0, i] for i, n in enumerate(names)}
    if "sobel_x" in out and "sobel_y" in out:
        out["magnitude"] = np.sqrt(out["sobel_x"] ** 2 + out["sobel_y"] ** 2)
    return out


def size_table(h, w, f=3, settings=((0, 1), (1, 1), (0, 2), (1, 2), (2, 3))):
    """[(padding, stride, P, Q by the rule, P, Q returned by conv2d)] for an h x w input and an f x f filter."""
    rows = []
    probe = np.zeros((1, 1, h, w), np.float32)
    k = np.ones((1, 1, f, f), np.float32)
    for p, s in settings:
        P, Q = F.conv_output_size(h, f, s, p), F.conv_output_size(w, f, s, p)
        y = F.conv2d(probe, k, stride=s, padding=p)
        rows.append((p, s, P, Q, y.shape[2], y.shape[3]))
    return rows


def run(source="china.jpg", out="runs/viz", names=None, kernel=None, max_side=256, print_fn=print,
        name="edges.png") -> dict:
    """Edges of a photograph: picture of input and every filter output, the size picture for padding and
    stride, printed statistics. Returns the numbers (and 'files')."""
    img = load_image(source, max_side)
    extra = {"custom": parse_kernel(kernel)} if kernel else None
    resp = apply_filters(img, names, extra)
    H, W = img.shape
    stats = [(n, f"{r.shape[0]}x{r.shape[1]}", f"{r.min():+.3f}", f"{r.max():+.3f}", f"{np.abs(r).mean():.4f}")
             for n, r in resp.items()]
    print_fn(f"input {source}: {H}x{W} grey, values in [0, 1]; every filter applied by one convforge conv2d "
             f"(K={len(resp) - ('magnitude' in resp)}, 3x3, stride 1, no padding)")
    print_fn(fmt_table(("output", "size", "min", "max", "mean |y|"), stats))

    plt = pyplot()
    panels = [("input", img)] + list(resp.items())
    cols = 4
    rows = -(-len(panels) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.0 * cols, 2.4 * rows))
    for ax in np.ravel(axes):
        ax.axis("off")
    for ax, (n, r) in zip(np.ravel(axes), panels):
        if n in ("input", "magnitude"):
            ax.imshow(r, cmap="gray")
        else:
            lim = float(np.percentile(np.abs(r), 99.5)) or 1.0
            ax.imshow(r, cmap="RdBu_r", vmin=-lim, vmax=lim)
        ax.set_title(f"{n} ({r.shape[0]}x{r.shape[1]})", fontsize=9)
    fig.suptitle(f"3x3 filters applied with convforge.conv2d to {source}", fontsize=10)
    fig.tight_layout()
    files = [save(fig, out, name)]

    # Padding and stride: the rule's size and the size conv2d returns, on the same image.
    table = size_table(H, W, 3)
    print_fn(f"output size of a 3x3 filter on the {H}x{W} input: floor((n + 2p - f) / s) + 1")
    print_fn(fmt_table(("padding p", "stride s", "rule P", "rule Q", "conv2d P", "conv2d Q"), table))
    fig, axes = plt.subplots(1, len(table), figsize=(2.6 * len(table), 2.5))
    for ax, (p, s, P, Q, _, _) in zip(axes, table):
        r = apply_filters(img, ["sobel_x", "sobel_y"], stride=s, padding=p)["magnitude"]
        ax.imshow(r, cmap="gray", extent=(0, W, H, 0))  # same scale: smaller outputs look coarser
        ax.set_title(f"p={p}, s={s}: {P}x{Q}", fontsize=9)
        ax.set_xticks([]), ax.set_yticks([])
    fig.suptitle(f"Sobel magnitude on a {H}x{W} input: output size by padding p and stride s", fontsize=10)
    fig.tight_layout()
    files.append(save(fig, out, "edges_padding_stride.png"))
    for fpath in files:
        print_fn(f"wrote {fpath}")
    return {"input_shape": (H, W), "outputs": {n: r.shape for n, r in resp.items()}, "sizes": table, "files": files,
            "responses": resp, "image": img}
