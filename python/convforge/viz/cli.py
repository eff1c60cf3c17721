"""``convforge viz ...`` and ``convforge transfer ...``: add_subcommands(subparsers) registers both on the
main parser's subparsers; each handler is set as ``func`` and returns an exit code."""
from __future__ import annotations

import argparse

from .. import _cli

# Models that take ImageNet-style images (convforge.models, torchvision's layout).
IMAGE_MODELS = ("alexnet", "vgg11", "vgg11_bn", "vgg13", "vgg13_bn", "vgg16", "vgg16_bn", "vgg19", "vgg19_bn")


def _edges(a):
    from . import edges

    edges.run(a.image, a.out, a.filter, a.kernel, a.max_side)
    return 0


def _pixel_usage(a):
    from . import pixel_usage

    pixel_usage.run(a.n, a.f, a.padding, a.stride, a.out)
    return 0


def _receptive_field(a):
    from . import receptive_field

    receptive_field.run(a.out, tuple(a.models))
    return 0


def _features(a):
    from . import features

    features.run(a.out, a.checkpoint, a.index, a.epochs, a.seed, data_name=a.dataset, data_path=a.data)
    return 0


def _embeddings(a):
    if getattr(a, "images", None) is not None:
        from . import image_embeddings

        try:
            image_embeddings.run(a.images, a.model or "vgg16", a.weights, a.out, a.input_size, a.batch_size, a.k,
                                 a.seed)
        except KeyError as e:  # a weights file without a key the model needs
            raise ValueError(f"--weights: {e.args[0]}") from None
        except (FileNotFoundError, ValueError) as e:  # name the flag whose value is wrong
            msg = str(e)
            flag = "--weights" if "load_weights" in msg else "--input-size" if "input_size" in msg else "--images"
            raise type(e)(f"{flag}: {msg}") from None
        return 0
    for flag in ("model", "weights"):
        if getattr(a, flag, None) is not None:
            raise ValueError(f"--{flag} needs --images (the ImageNet-style exercise); without --images the "
                             f"picture is LeNet-5's on the digits")
    from . import embeddings

    embeddings.run(a.out, a.checkpoint, a.epochs, a.seed, a.k, a.split, data_name=a.dataset, data_path=a.data)
    return 0


def _all(a):
    for fn in (_edges, _pixel_usage, _receptive_field, _features, _embeddings):
        fn(a)
    return 0


def _transfer_demo(a):
    from .. import transfer

    transfer.demo(a.out, pretrain_epochs=a.pretrain_epochs, epochs=a.epochs, per_class=a.per_class,
                  batch_size=a.batch_size, lr=a.lr, cut=a.cut, heads=tuple(a.heads), seed=a.seed,
                  progress=not a.no_progress)
    return 0


def _transfer_head(a):
    from .. import transfer

    transfer.head_on_checkpoint(a.checkpoint, a.dataset, a.data, a.out, epochs=a.epochs, per_class=a.per_class,
                                batch_size=a.batch_size, lr=a.lr, cut=a.cut, heads=tuple(a.heads), seed=a.seed,
                                progress=not a.no_progress)
    return 0


def _model_args(p):
    from ..data import DATASETS

    p.add_argument("--checkpoint", default=None, help="a trained model (.npz from `convforge train`), shown on the "
                   "data set it was trained on; default: train a LeNet-5 on --dataset for --epochs epochs first")
    p.add_argument("--dataset", default=None, choices=DATASETS,
                   help="the images to show (default: the checkpoint's, or digits for the quick training)")
    p.add_argument("--data", default=None, help="with --dataset mnist: folder of MNIST's IDX files")
    p.add_argument("--epochs", type=_cli.positive_int, default=6, help="epochs of that quick training (default 6)")
    p.add_argument("--seed", type=_cli.nonnegative_int, default=0, help="of the quick training")


def add_subcommands(subparsers) -> None:
    """Register `viz` (edges, pixel-usage, receptive-field, features, embeddings, all) and `transfer`
    (demo, head) on an argparse subparsers object; handlers are stored as `func`."""
    fmt = _cli.HelpFormatter
    viz = subparsers.add_parser("viz", help="pictures of what convolutions and a trained CNN do (PNG + numbers)",
                                description="Every command writes PNGs into --out and prints the numbers behind them.")
    vs = viz.add_subparsers(dest="viz_command", metavar="PICTURE", required=True)

    def sub(name, func, help_):
        p = vs.add_parser(name, help=help_, description=help_, formatter_class=fmt)
        p.add_argument("--out", default="runs/viz", help="folder for the PNGs")
        p.set_defaults(func=func)
        return p

    def edge_args(p):
        p.add_argument("--image", default="china.jpg",
                       help="china.jpg or flower.jpg (scikit-learn's sample photographs), or any image file")
        p.add_argument("--filter", nargs="+", default=None, metavar="NAME",
                       help="filters among sobel_x sobel_y prewitt_x prewitt_y laplacian (default all)")
        p.add_argument("--kernel", default=None, help="an extra 3x3 kernel, rows separated by ';', e.g. '0,-1,0;-1,5,-1;0,-1,0'")
        p.add_argument("--max-side", type=_cli.positive_int, default=256, help="shrink the photograph to this longest side")

    def pix_args(p):
        p.add_argument("--n", type=_cli.positive_int, default=5, help="input size n x n")
        p.add_argument("--f", type=_cli.positive_int, default=3, help="filter size f x f")
        p.add_argument("--padding", "-p", type=_cli.nonnegative_int, default=1, help="padding of the second map (the first has none)")
        p.add_argument("--stride", "-s", type=_cli.positive_int, default=1, help="stride of both maps")

    def rf_args(p):
        p.add_argument("--models", nargs="+", default=["lenet5", "vgg16"], help="architectures")

    def emb_args(p):
        p.add_argument("--k", type=_cli.positive_int, default=5, help="neighbours of the kNN accuracy")
        p.add_argument("--split", choices=("test", "train"), default="test")

    edge_args(sub("edges", _edges, "Sobel, Prewitt, Laplacian (and your kernel) on a photograph; output size by padding and stride"))
    pix_args(sub("pixel-usage", _pixel_usage, "how many output positions use each input pixel, without and with padding"))
    rf_args(sub("receptive-field", _receptive_field, "output size and receptive field per layer of LeNet-5 and VGG-16"))
    p = sub("features", _features, "filters and feature maps of a trained model (LeNet-5 by default) on one test image")
    _model_args(p)
    p.add_argument("--index", type=_cli.nonnegative_int, default=None, help="which test image (default: the first one classified right)")
    p = sub("embeddings", _embeddings, "PCA and t-SNE of a trained model's last hidden layer (LeNet-5: 84 units), with "
            "kNN accuracies; with --images, of AlexNet's or VGG's 4096-unit layer over your image folder")
    _model_args(p)
    emb_args(p)
    p.add_argument("--images", default=None, metavar="DIR",
                   help="an image folder with one subfolder per class (any size, RGB or grayscale): embed it with "
                        "--model instead of LeNet-5 on the digits")
    p.add_argument("--model", default=None, choices=IMAGE_MODELS, help="with --images: the network (default vgg16)")
    p.add_argument("--weights", default=None, metavar="FILE",
                   help="with --images: the model's weights, a torchvision state dict (.pth, e.g. vgg16-397923af.pth), "
                        ".npz or .safetensors (default: random initial weights)")
    p.add_argument("--input-size", type=_cli.positive_int, default=224, help="with --images: centre-crop side (224 for ImageNet)")
    p.add_argument("--batch-size", type=_cli.positive_int, default=8, help="with --images: images per forward pass")
    p = sub("all", _all, "every picture above, with their defaults")
    edge_args(p), pix_args(p), rf_args(p), _model_args(p), emb_args(p)
    p.add_argument("--index", type=_cli.nonnegative_int, default=None, help="which test image for features")

    tr = subparsers.add_parser("transfer", help="transfer learning by stored activations (head only vs from scratch)")
    ts = tr.add_subparsers(dest="transfer_command", metavar="COMMAND", required=True)

    def budget(p):
        p.add_argument("--out", default="runs/transfer", help="folder for the activations (.npy), table (JSON) and PNG")
        p.add_argument("--epochs", type=_cli.positive_int, default=2, help="the small budget: epochs for the heads and from scratch")
        p.add_argument("--per-class", type=_cli.positive_int, default=None, help="labelled target training images per class (default all)")
        p.add_argument("--batch-size", type=_cli.positive_int, default=32, help="images per step")
        p.add_argument("--lr", type=_cli.positive_float, default=2e-3, help="Adam learning rate")
        p.add_argument("--cut", choices=("conv", "hidden"), default="conv",
                       help="store the flattened conv output (LeNet-5: 400 values) or the last hidden layer (84)")
        p.add_argument("--heads", nargs="+", choices=("mlp", "linear"), default=["mlp", "linear"],
                       help="heads to train: the model's own classifier layers, fresh (mlp), or one Linear layer")
        p.add_argument("--seed", type=_cli.nonnegative_int, default=0, help="weights, batch order, subsets")
        p.add_argument("--no-progress", action="store_true", help="no progress bars")

    p = ts.add_parser("demo", help="LeNet-5 trained on digits 0-4, transferred to 5-9 (offline)", formatter_class=fmt)
    budget(p)
    p.add_argument("--pretrain-epochs", type=_cli.positive_int, default=6, help="epochs of the trunk on digits 0-4")
    p.set_defaults(func=_transfer_demo)
    p = ts.add_parser("head", help="a trained checkpoint as trunk, a new head on a data set", formatter_class=fmt)
    p.add_argument("checkpoint")
    p.add_argument("--dataset", choices=("digits", "mnist"), default="digits")
    p.add_argument("--data", default=None, help="MNIST folder")
    budget(p)
    p.set_defaults(func=_transfer_head)


def main(argv=None) -> int:
    """Stand-alone entry (python -m convforge.viz.cli ...) until the main command line wires these in."""
    parser = argparse.ArgumentParser(prog="convforge")
    add_subcommands(parser.add_subparsers(dest="command", required=True))
    a = parser.parse_args(argv)
    return a.func(a)


if __name__ == "__main__":
    raise SystemExit(main())
