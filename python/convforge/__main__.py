"""The convforge command line: info, summary, train, evaluate, predict.

    python -m convforge info
    python -m convforge summary lenet5
    python -m convforge train --model lenet5 --dataset digits --out runs/digits
    python -m convforge evaluate runs/digits/best.npz
    python -m convforge predict runs/digits/best.npz digit.png
"""
from __future__ import annotations

import argparse
import json
import sys


def _cmd_info(args) -> int:
    import convforge

    info = convforge.build_info()
    if args.json:
        print(json.dumps(info, indent=2, default=str))
    else:
        width = max(len(k) for k in info)
        for k, v in info.items():
            print(f"{k.ljust(width)}  {v}")
    return 0


def _model_kwargs(args) -> dict:
    kw = {}
    if args.model == "lenet5":
        kw.update(activation=args.activation, pooling=args.pooling)
    for name in ("num_classes", "input_size", "in_channels"):
        v = getattr(args, name, None)
        if v is not None:
            kw[name] = v
    return kw


def _cmd_summary(args) -> int:
    from . import models

    try:
        model = models.build(args.model, **_model_kwargs(args))
        shape = model.input_shape if args.input_size is None else (model.input_shape[0], args.input_size, args.input_size)
        model.summary((args.batch,) + tuple(shape))
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


def _set_threads(n):
    if n:
        from . import functional as F

        F.set_num_threads(n)


def _check_device(device: str):
    if device.startswith("cuda"):
        from . import cuda

        if not cuda.is_available():
            raise SystemExit("error: --device cuda, but convforge was built without CUDA or no GPU is visible "
                             "(python -m convforge info)")


def _cmd_train(args) -> int:
    from pathlib import Path

    from . import data, models, nn, train

    _set_threads(args.threads)
    _check_device(args.device)
    ds = data.load_dataset(args.dataset, args.data, download=args.download)
    for note in ds.notes:
        print(f"note: {note}")
    c, h, w = ds.input_shape
    nn.manual_seed(args.seed)
    kw = _model_kwargs(args)
    kw.update(num_classes=10, in_channels=c, input_size=h)
    try:
        model = models.build(args.model, **kw)
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if args.device != "cpu":
        model.to(args.device)
    print(f"{args.model}: {model.num_parameters():,} parameters; {args.dataset}: {len(ds.y_train)} train / "
          f"{len(ds.y_test)} test images; {args.optimizer} lr {args.lr}, batch {args.batch_size}, {args.epochs} epochs, "
          f"seed {args.seed}, device {args.device}")
    try:
        res = train.fit(model, ds, epochs=args.epochs, batch_size=args.batch_size, optimizer=args.optimizer, lr=args.lr,
                        momentum=args.momentum, weight_decay=args.weight_decay, schedule=args.schedule,
                        augment=args.augment, seed=args.seed, out=args.out, progress=not args.no_progress,
                        meta={"data_path": str(Path(args.data).resolve()) if args.data else None})
    except KeyboardInterrupt:
        print(f"\ninterrupted: the last checkpoint is in {Path(args.out) / 'last.npz'}", file=sys.stderr)
        return 130
    print(f"best test accuracy {100 * res['best_accuracy']:.2f}% at epoch {res['best_epoch']}; "
          f"final {100 * res['history'][-1]['test_accuracy']:.2f}%; {res['seconds']:.1f} s; "
          f"wrote {args.out}/best.npz, last.npz, metrics.json, curves.png")
    return 0


def _load(args):
    from . import nn

    _set_threads(getattr(args, "threads", None))
    _check_device(args.device)
    return nn.load_checkpoint(args.checkpoint, device=args.device)


def _cmd_evaluate(args) -> int:
    from . import data, train

    model, meta = _load(args)
    dmeta = meta.get("data", {})
    name = args.dataset or dmeta.get("dataset") or "digits"
    ds = data.load_dataset(name, args.data or meta.get("data_path"), download=args.download)
    ev = train.evaluate(model, ds.x_test, ds.y_test)
    cm = train.confusion_matrix(ds.y_test, ev["predictions"], ds.num_classes)
    print(f"{meta.get('arch')} from {args.checkpoint} on the {name} test split ({len(ds.y_test)} images): "
          f"accuracy {100 * ev['accuracy']:.2f}%, loss {ev['loss']:.4f}")
    print("confusion matrix (rows: true class, columns: predicted)")
    print("     " + " ".join(f"{j:5d}" for j in range(cm.shape[1])))
    for i, row in enumerate(cm):
        print(f"{i:4d} " + " ".join(f"{v:5d}" for v in row))
    return 0


def _cmd_predict(args) -> int:
    import warnings

    import numpy as np

    from . import data, train

    model, meta = _load(args)
    dmeta = meta.get("data", {})
    name = dmeta.get("dataset", "")
    size = int(dmeta.get("input_shape", [1, 32, 32])[-1])
    failed = 0
    for path in data.image_files(args.images):
        try:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always", data.BlankImageWarning)
                img = data.load_image(path)
            for w in caught:
                print(f"warning: {w.message}", file=sys.stderr)
            x = data.prepare_image(img, name, dmeta.get("mean", 0.0), dmeta.get("std", 1.0), size=size,
                                   preprocess=not args.no_preprocess)
        except (OSError, ValueError) as e:  # PIL.UnidentifiedImageError is an OSError
            print(f"error: {path}: {e}", file=sys.stderr)
            failed += 1
            continue
        p = train.softmax(train.logits_of(model, x).astype(np.float64))[0]
        top = np.argsort(p)[::-1][: args.top]
        alts = ", ".join(f"{c}: {p[c]:.3f}" for c in top[1:])
        print(f"{path}: class {top[0]} (probability {p[top[0]]:.3f})" + (f"; next {alts}" if alts else ""))
    if failed:
        print(f"error: {failed} of the images could not be read", file=sys.stderr)
    return 1 if failed else 0


def build_parser() -> argparse.ArgumentParser:
    from .train import DEFAULTS

    p = argparse.ArgumentParser(prog="convforge", description="convforge: conv2d/pooling/GEMM kernels, LeNet-5, AlexNet, VGG-16")
    sub = p.add_subparsers(dest="command", required=True)

    s = sub.add_parser("info", help="version, compiler, SIMD level, threads, CUDA")
    s.add_argument("--json", action="store_true", help="print JSON")
    s.set_defaults(func=_cmd_info)

    def model_opts(s, train_defaults: bool):
        s.add_argument("--activation", choices=["tanh", "relu", "sigmoid"], default="tanh", help="LeNet-5 activation (default tanh, as in 1998)")
        s.add_argument("--pooling", choices=["max", "avg"], default="max", help="LeNet-5 pooling (default max)")
        if not train_defaults:
            s.add_argument("--num-classes", type=int, default=None)
            s.add_argument("--input-size", type=int, default=None, help="square input side (default: the model's own)")
            s.add_argument("--in-channels", type=int, default=None)

    s = sub.add_parser("summary", help="each layer's output shape, parameters and FLOPs")
    s.add_argument("model", choices=["lenet5", "alexnet", "vgg16"])
    s.add_argument("--batch", type=int, default=1)
    model_opts(s, False)
    s.set_defaults(func=_cmd_summary)

    s = sub.add_parser("train", help="train a model from scratch")
    s.add_argument("--model", default="lenet5", choices=["lenet5", "alexnet", "vgg16"])
    model_opts(s, True)
    s.add_argument("--dataset", default="digits", choices=["digits", "mnist"])
    s.add_argument("--data", default=None, help="folder with MNIST's IDX files (default ~/.cache/convforge/mnist)")
    s.add_argument("--download", action="store_true", help="download MNIST into --data if missing")
    s.add_argument("--epochs", type=int, default=DEFAULTS["epochs"])
    s.add_argument("--batch-size", type=int, default=DEFAULTS["batch_size"])
    s.add_argument("--lr", type=float, default=DEFAULTS["lr"])
    s.add_argument("--optimizer", default=DEFAULTS["optimizer"], choices=["sgd", "nesterov", "adam"])
    s.add_argument("--momentum", type=float, default=DEFAULTS["momentum"], help="for sgd/nesterov")
    s.add_argument("--weight-decay", type=float, default=DEFAULTS["weight_decay"])
    s.add_argument("--schedule", default=DEFAULTS["schedule"], choices=["cosine", "constant"], help="learning-rate schedule over the epochs")
    s.add_argument("--augment", type=int, default=DEFAULTS["augment"], help="random shifts of up to N pixels (0: off)")
    s.add_argument("--device", default="cpu", help="cpu or cuda")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--threads", type=int, default=None, help="OpenMP threads for the CPU kernels")
    s.add_argument("--out", default="runs/latest", help="folder for checkpoints, metrics.json and curves.png")
    s.add_argument("--no-progress", action="store_true", help="no progress bar")
    s.set_defaults(func=_cmd_train)

    s = sub.add_parser("evaluate", help="accuracy and confusion matrix of a checkpoint on its data set's test split")
    s.add_argument("checkpoint")
    s.add_argument("--dataset", default=None, choices=["digits", "mnist"], help="default: the one it was trained on")
    s.add_argument("--data", default=None)
    s.add_argument("--download", action="store_true")
    s.add_argument("--device", default="cpu")
    s.add_argument("--threads", type=int, default=None)
    s.set_defaults(func=_cmd_evaluate)

    s = sub.add_parser("predict", help="class and probability for image files",
                       description="Reads each picture (any size; PNG, JPEG...; transparency, 16-bit, palettes and EXIF "
                                   "orientation handled; dark ink on light paper or the reverse), then repeats the "
                                   "training data's preprocessing (for MNIST: crop to the ink, fit in 20x20, centre of "
                                   "mass at the centre of 28x28, pad to 32x32). A file that cannot be read is reported "
                                   "and the others go on (exit status 1).")
    s.add_argument("checkpoint", help="a .npz written by `convforge train`")
    s.add_argument("images", nargs="+", help="image files, or folders of them")
    s.add_argument("--top", type=int, default=1, help="also show the next classes")
    s.add_argument("--no-preprocess", action="store_true",
                   help="the images are already like the training images (MNIST: 28x28, white digit centred on black); "
                        "only pad or resize them")
    s.add_argument("--device", default="cpu")
    s.set_defaults(func=_cmd_predict)

    # Commands that live beside the modules they drive.
    from .viz.cli import add_subcommands as add_viz
    from .kernels import add_subcommands as add_kernels
    from .grade import add_subcommands as add_grade

    add_viz(sub)
    add_kernels(sub)
    add_grade(sub)
    return p


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (FileNotFoundError, ValueError, ImportError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
