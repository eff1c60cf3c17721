"""How many output positions use each input pixel: the gradient of sum(conv2d(x, ones)) with respect to
x, i.e. convforge's conv2d_backward with a grad_out of ones and an all-ones filter (a transposed
convolution of ones). 5x5 input, 3x3 filter, no padding: the corner is used once, the centre nine times.

    python -m convforge viz pixel-usage --n 5 --f 3 --padding 1 --stride 1 --out runs/viz
"""
from __future__ import annotations

import numpy as np

from .. import functional as F
from ._common import pyplot, save


def pixel_usage(n, f, padding=0, stride=1) -> np.ndarray:
    """(n, n) int array: for each input pixel, the number of f x f windows (output positions) that cover it."""
    P = F.conv_output_size(n, f, stride, padding)
    x = np.zeros((1, 1, n, n), np.float32)
    w = np.ones((1, 1, f, f), np.float32)
    dy = np.ones((1, 1, P, P), np.float32)
    dx, _, _ = F.conv2d_backward(dy, x, w, stride=stride, padding=padding, output_mask=(True, False, False))
    return np.rint(dx[0, 0]).astype(np.int64)


def padded_usage(n, f, padding=0, stride=1) -> np.ndarray:
    """Usage over the padded (n + 2p) grid, padding cells included (what the picture shows around the image)."""
    m = n + 2 * padding
    return pixel_usage(m, f, 0, stride)


def run(n=5, f=3, padding=1, stride=1, out="runs/viz", print_fn=print, name="pixel_usage.png") -> dict:
    """Heat maps without and with padding (and the padded border), printed counts and output sizes."""
    settings = [(0, stride), (padding, stride)] if padding else [(0, stride)]
    result = {"n": n, "f": f, "stride": stride, "cases": []}
    plt = pyplot()
    fig, axes = plt.subplots(1, len(settings), figsize=(4.6 * len(settings), 4.4), squeeze=False)
    for ax, (p, s) in zip(axes[0], settings):
        P = F.conv_output_size(n, f, s, p)
        counts = pixel_usage(n, f, p, s)
        full = padded_usage(n, f, p, s)
        case = {"padding": p, "stride": s, "output_size": P, "counts": counts, "min": int(counts.min()),
                "max": int(counts.max()), "corner": int(counts[0, 0]), "centre": int(counts[n // 2, n // 2]),
                "total": int(counts.sum())}
        result["cases"].append(case)
        print_fn(f"n={n}, f={f}, p={p}, s={s}: output {P}x{P} = floor(({n} + 2*{p} - {f}) / {s}) + 1; "
                 f"{P * P} windows x {f * f} pixels = {P * P * f * f} uses "
                 f"({case['total']} on the image, {P * P * f * f - case['total']} on padding)")
        print_fn(f"  uses per input pixel (corner {case['corner']}, centre {case['centre']}, "
                 f"min {case['min']}, max {case['max']}):")
        for row in counts:
            print_fn("    " + " ".join(f"{v:2d}" for v in row))
        m = n + 2 * p
        ax.imshow(full, cmap="viridis", vmin=0, vmax=max(int(full.max()), 1), extent=(-p - .5, n + p - .5, n + p - .5, -p - .5))
        for i in range(m):
            for j in range(m):
                inside = p <= i < p + n and p <= j < p + n
                ax.text(j - p, i - p, str(full[i, j]), ha="center", va="center", fontsize=9 if m <= 12 else 6,
                        color="white" if full[i, j] < 0.6 * full.max() else "black", alpha=1.0 if inside else 0.45)
        if p:
            ax.add_patch(plt.Rectangle((-.5, -.5), n, n, fill=False, ec="red", lw=2))
        ax.set_title(f"{n}x{n} input, {f}x{f} filter, p={p}, s={s}\noutput {P}x{P}; "
                     f"uses: corner {case['corner']}, centre {case['centre']}", fontsize=9)
        ax.set_xticks(range(-p, n + p)), ax.set_yticks(range(-p, n + p))
        ax.tick_params(labelsize=7)
    fig.suptitle("Output positions using each input pixel (convforge conv2d_backward of ones)"
                 + ("; red box = image, faded = padding" if padding else ""), fontsize=9)
    fig.tight_layout()
    result["files"] = [save(fig, out, name)]
    print_fn(f"wrote {result['files'][0]}")
    return result
