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
from pathlib import Path


def _cmd_info(args) -> int:
    import convforge

    info = convforge.build_info()
    info.update(convforge.machine_info(measure=not args.no_measure))
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
        if args.algos:
            _print_algos(model, (args.batch,) + tuple(shape))
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


def _print_algos(model, shape):
    from . import functional as F, tuning

    rows = tuning.model_algos(model, shape)
    print(f"\nalgorithms per layer ({F.get_num_threads()} threads; 'tuned': measured by `convforge tune` or with "
          f"autotune on, from {tuning.cache_path()}; 'auto': the heuristic's choice)")
    header = ("layer", "forward", "backward data", "backward weight")
    body = [(name, r.get("forward", ""), r.get("backward_data", ""), r.get("backward_weight", "")) for name, r in rows]
    widths = [max(len(row[i]) for row in [header] + body) for i in range(4)]
    for row in [header] + body:
        print("  ".join(c.ljust(w) for c, w in zip(row, widths)))


def _cmd_tune(args) -> int:
    import time

    from . import models, tuning

    _set_threads(args.threads)
    model = models.build(args.model)
    shape = (args.batch,) + tuple(model.input_shape)
    t0 = time.perf_counter()
    tuning.tune_model(model, shape, progress=not args.no_progress)
    print(f"tuned {args.model} at batch {args.batch} in {time.perf_counter() - t0:.1f} s; cache {tuning.cache_path()}")
    _print_algos(model, shape)
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


def _check_data_args(args) -> int:
    """0, or the exit status 2 after one line for a --data that cannot be used."""
    from pathlib import Path

    from . import _cli

    if args.data is None:
        return 0
    if args.dataset not in (None, "mnist"):
        return _cli.fail("--data", args.data, f"a folder of MNIST IDX files is read only with --dataset mnist, "
                                              f"not --dataset {args.dataset}")
    p = Path(args.data)
    if not args.download and not p.is_dir():
        return _cli.fail("--data", args.data, ("no such folder" if not p.exists() else "not a folder")
                         + " (it should hold MNIST's IDX files; add --download to fetch them into it)")
    return 0


def _run_folder(args) -> tuple:
    """(folder, None) for this run's outputs, or (None, exit status) after one error line: without --out, the
    next free runs/<model>-<dataset>-<n>; an --out that holds a run is refused unless --force."""
    from pathlib import Path

    from . import _cli

    if args.out is None:
        root = Path("runs")
        stem = f"{args.model}-{args.dataset}"
        n = 1
        while (root / f"{stem}-{n}").exists():
            n += 1
        return root / f"{stem}-{n}", None
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        return None, _cli.fail("--out", args.out, "is a file, not a folder")
    taken = [n for n in ("best.npz", "last.npz", "metrics.json") if (out / n).exists()]
    if taken and not (args.force or getattr(args, "resume", None)):
        return None, _cli.fail("--out", args.out, f"already holds a run ({', '.join(taken)}); add --force to overwrite "
                                                  f"it, or choose another folder")
    return out, None


def _cmd_train(args) -> int:
    from . import _cli, data, models, nn, train

    rc = _check_data_args(args)
    if rc:
        return rc
    hp = train.defaults_for(args.model, args.dataset)
    for k, v in hp.items():
        if getattr(args, k, None) is None:
            setattr(args, k, v)
    out, rc = _run_folder(args)
    if rc:
        return rc
    _set_threads(args.threads)
    _check_device(args.device)
    ds = data.load_dataset(args.dataset, args.data, download=args.download)
    for note in ds.notes:
        print(f"note: {note}")
    if args.input_size != ds.input_shape[-1]:
        ds = data.resized(ds, args.input_size)
    c, h, w = ds.input_shape
    nn.manual_seed(args.seed)
    kw = _model_kwargs(args)
    kw.update(num_classes=10, in_channels=c, input_size=h)
    try:
        model = models.build(args.model, **kw)
    except ValueError as e:
        return _cli.fail("--input-size", args.input_size, f"{e} ({train.fits_help()})")
    if getattr(args, "init", None) == "torchvision":
        train.torchvision_init(model)
    if args.device != "cpu":
        model.to(args.device)
    try:
        train.check_val_fraction(args.val_fraction, ds.y_train)
    except ValueError as e:
        return _cli.fail("--val-fraction", args.val_fraction, str(e))
    print(f"{args.model}: {model.num_parameters():,} parameters; {ds.name}: {len(ds.y_train)} train "
          f"({100 * args.val_fraction:g}% of them held out for validation) / {len(ds.y_test)} test images, "
          f"{h}x{w}; {args.optimizer} lr {args.lr}, batch {args.batch_size}, {args.epochs} epochs, seed {args.seed}, "
          f"device {args.device}; writing to {out}")
    progress = not args.no_progress and sys.stderr.isatty()
    try:
        res = train.fit(model, ds, epochs=args.epochs, batch_size=args.batch_size, optimizer=args.optimizer, lr=args.lr,
                        momentum=args.momentum, weight_decay=args.weight_decay, schedule=args.schedule,
                        augment=args.augment, seed=args.seed, out=out, progress=progress,
                        val_fraction=args.val_fraction, patience=args.patience,
                        title=f"{args.model} on {ds.name} ({len(ds.y_train)} training images, {h}x{w})",
                        meta={"data_path": str(Path(args.data).resolve()) if args.data else None})
    except KeyboardInterrupt:
        print(f"\ninterrupted: the last checkpoint is in {out / 'last.npz'}", file=sys.stderr)
        return 130
    val = res["best_val_accuracy"]
    print((f"best validation accuracy {100 * val:.2f}% at epoch {res['best_epoch']}" if val is not None else
           f"no validation split: kept epoch {res['best_epoch']}") +
          (" (stopped early)" if res["stopped_early"] else "") +
          f"; test accuracy of that model {100 * res['test_accuracy']:.2f}% on {len(ds.y_test)} held-out images; "
          f"{res['seconds']:.1f} s; wrote {out}/best.npz, last.npz, metrics.json, curves.png")
    return 0


def _load(args):
    from . import nn

    _set_threads(getattr(args, "threads", None))
    _check_device(args.device)
    return nn.load_checkpoint(args.checkpoint, device=args.device)


def _cmd_evaluate(args) -> int:
    from . import data, train

    rc = _check_data_args(args)
    if rc:
        return rc
    model, meta = _load(args)
    ds = data.load_for_checkpoint(meta, args.dataset, args.data, download=args.download)
    name = ds.name
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
    from . import __version__, _cli
    from .data import DATASETS
    from .train import DEFAULTS, MODEL_DEFAULTS, fits_help

    fmt = _cli.HelpFormatter
    p = _cli.Parser(prog="convforge", description="convforge: conv2d/pooling/GEMM kernels, LeNet-5, AlexNet, VGG-16")
    p.add_argument("--version", action="version", version=f"convforge {__version__}")
    sub = p.add_subparsers(dest="command", required=True)

    s = sub.add_parser("info", help="version, compiler, the machine (caches, measured peak and bandwidth), GEMM config, threads, CUDA")
    s.add_argument("--json", action="store_true", help="print JSON")
    s.add_argument("--no-measure", action="store_true", help="skip measuring the FMA peak and the triad bandwidth (~1 s)")
    s.set_defaults(func=_cmd_info)

    def model_opts(s, train: bool):
        s.add_argument("--activation", choices=["tanh", "relu", "sigmoid"], default="tanh",
                       help="LeNet-5 activation (default tanh, as in 1998)")
        s.add_argument("--pooling", choices=["max", "avg"], default="max", help="LeNet-5 pooling (default max)")
        s.add_argument("--input-size", type=_cli.positive_int, default=None,
                       help="square input side; the images are resized to it and the model built for it (default: "
                            + ", ".join(f"{m} {d['input_size']}" for m, d in MODEL_DEFAULTS.items()) + ")")
        if not train:
            s.add_argument("--num-classes", type=_cli.positive_int, default=None, help="classes of the last layer")
            s.add_argument("--in-channels", type=_cli.positive_int, default=None, help="input channels")

    def run_opts(s):
        s.add_argument("--device", default="cpu", help="cpu or cuda")
        s.add_argument("--threads", type=_cli.positive_int, default=None, help="OpenMP threads for the CPU kernels")

    s = sub.add_parser("summary", help="each layer's output shape, parameters and FLOPs", formatter_class=fmt)
    s.add_argument("model", choices=["lenet5", "alexnet", "vgg11", "vgg11_bn", "vgg13", "vgg13_bn", "vgg16", "vgg16_bn",
                                     "vgg19", "vgg19_bn"], help="architecture")
    s.add_argument("--batch", type=_cli.positive_int, default=1, help="batch size N of the shapes")
    s.add_argument("--algos", action="store_true", help="also the algo each conv/linear layer's passes use (tuned or auto)")
    model_opts(s, False)
    s.set_defaults(func=_cmd_summary)

    s = sub.add_parser("tune", help="time the eligible kernels of a model's layers and remember the fastest",
                       formatter_class=fmt)
    s.add_argument("--model", required=True, choices=["lenet5", "alexnet", "vgg16"], help="architecture")
    s.add_argument("--batch", type=_cli.positive_int, default=1, help="batch size to tune for")
    s.add_argument("--threads", type=_cli.positive_int, default=None, help="OpenMP threads (the cache is per thread count)")
    s.add_argument("--no-progress", action="store_true", help="no progress bar")
    s.set_defaults(func=_cmd_tune)

    s = sub.add_parser("train", help="train a model from scratch", formatter_class=fmt,
                       description="Train from scratch, choosing the best epoch on a validation split held out from the "
                                   "training images; the test split is used once, at the end. Which models fit which "
                                   "data: " + fits_help() + ". Flags left unset take the model's and data set's "
                                   "defaults (convforge.train.defaults_for; VGG-16 and AlexNet: torchvision's "
                                   "initialisation, Adam lr 0.0001, no shifts).")
    s.add_argument("--model", default="lenet5", choices=["lenet5", "alexnet", "vgg16"], help="architecture")
    model_opts(s, True)
    s.add_argument("--dataset", default=DATASETS[0], choices=DATASETS,
                   help="mnist-bundled: the 10,000 real MNIST test digits shipped inside convforge (first 8,000 to train "
                        "and validate, last 2,000 to test; offline); digits: scikit-learn's 1,797 8x8 digits, offline; "
                        "mnist: MNIST's IDX files from --data")
    s.add_argument("--data", default=None, help="with --dataset mnist: folder holding MNIST's IDX files "
                                                "(default ~/.cache/convforge/mnist)")
    s.add_argument("--download", action="store_true", help="with --dataset mnist: download MNIST into --data if missing")
    s.add_argument("--epochs", type=_cli.positive_int, default=None,
                   help="passes over the training images (default 10 on MNIST, 20 on digits)")
    s.add_argument("--batch-size", type=_cli.positive_int, default=None, help=f"images per step (default {DEFAULTS['batch_size']})")
    s.add_argument("--lr", type=_cli.positive_float, default=None,
                   help=f"learning rate at the start (default {DEFAULTS['lr']}; 0.0001 for VGG-16 and AlexNet)")
    s.add_argument("--optimizer", default=None, choices=["sgd", "nesterov", "adam"],
                   help=f"default {DEFAULTS['optimizer']}")
    s.add_argument("--momentum", type=_cli.momentum, default=None, help=f"for sgd/nesterov (default {DEFAULTS['momentum']})")
    s.add_argument("--weight-decay", type=_cli.nonnegative_float, default=None,
                   help=f"L2 penalty on the weights (default {DEFAULTS['weight_decay']})")
    s.add_argument("--schedule", default=None, choices=["cosine", "constant"],
                   help=f"learning rate over the epochs (default {DEFAULTS['schedule']})")
    s.add_argument("--augment", type=_cli.nonnegative_int, default=None,
                   help=f"random shifts of up to N pixels, 0: off (default {DEFAULTS['augment']}; 0 for VGG-16/AlexNet)")
    s.add_argument("--val-fraction", type=_cli.fraction, default=DEFAULTS["val_fraction"],
                   help="part of the training images held out, stratified by class and seeded, to choose the best "
                        f"epoch and stop early; 0: none, the last epoch is kept (default {DEFAULTS['val_fraction']})")
    s.add_argument("--patience", type=_cli.positive_int, default=None,
                   help="stop when validation accuracy has not improved for this many epochs (default: never)")
    s.add_argument("--seed", type=_cli.nonnegative_int, default=0, help="initial weights, batch order, validation split")
    run_opts(s)
    s.add_argument("--out", default=None, help="folder for best.npz, last.npz, metrics.json and curves.png "
                                               "(default: the next free runs/MODEL-DATASET-N)")
    s.add_argument("--force", action="store_true", help="overwrite the run already in --out")
    s.add_argument("--no-progress", action="store_true", help="no progress bars (they are off anyway when stderr is "
                                                              "not a terminal)")
    s.set_defaults(func=_cmd_train)

    s = sub.add_parser("evaluate", help="accuracy and confusion matrix of a checkpoint on its data set's test split",
                       formatter_class=fmt)
    s.add_argument("checkpoint", help="a .npz written by `convforge train`")
    s.add_argument("--dataset", default=None, choices=DATASETS, help="default: the one it was trained on")
    s.add_argument("--data", default=None, help="with --dataset mnist: folder of MNIST's IDX files "
                                                "(default: the one it was trained on)")
    s.add_argument("--download", action="store_true", help="download MNIST into --data if missing")
    run_opts(s)
    s.set_defaults(func=_cmd_evaluate)

    s = sub.add_parser("predict", help="class and probability for image files", formatter_class=fmt,
                       description="Reads each picture (any size; PNG, JPEG...; transparency, 16-bit, palettes and EXIF "
                                   "orientation handled; dark ink on light paper or the reverse), then repeats the "
                                   "training data's preprocessing (for MNIST: crop to the ink, fit in 20x20, centre of "
                                   "mass at the centre of 28x28, pad to 32x32). A file that cannot be read is reported "
                                   "and the others go on (exit status 1).")
    s.add_argument("checkpoint", help="a .npz written by `convforge train`")
    s.add_argument("images", nargs="+", help="image files, or folders of them")
    s.add_argument("--top", type=_cli.positive_int, default=1, help="show the N most likely classes (default 1)")
    s.add_argument("--no-preprocess", action="store_true",
                   help="the images are already like the training images (MNIST: 28x28, white digit centred on black); "
                        "only pad or resize them")
    run_opts(s)
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
    """Run the command line on argv (default sys.argv[1:]); returns the exit status: 0 done, 1 some inputs
    failed (predict), 2 a bad argument or input (one line on stderr naming it), 130 interrupted."""
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as e:  # --help, --version, or a bad argument (already reported in one line)
        return e.code if isinstance(e.code, int) else 0 if e.code is None else 2
    try:
        return args.func(args)
    except (FileNotFoundError, ValueError, ImportError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
