"""Pictures of what convolutions and a trained CNN do, computed with convforge's kernels and drawn with
matplotlib (Agg): edge detection, pixel usage under padding, receptive fields, filters and feature maps,
embeddings of the last hidden layer. Each module has ``run(out=...)`` that writes PNGs and prints the
numbers behind them; ``convforge viz ...`` on the command line (see ``viz.cli``)."""
from . import edges, embeddings, features, pixel_usage, receptive_field  # noqa: F401
from .edges import FILTERS, apply_filters, load_image  # noqa: F401
from .embeddings import knn_accuracy, last_hidden  # noqa: F401
from .pixel_usage import pixel_usage as usage_counts  # noqa: F401
from .receptive_field import empirical_receptive_field, layer_rows  # noqa: F401
