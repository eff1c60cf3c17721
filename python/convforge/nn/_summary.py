"""Module.summary: a table of each layer's output shape, parameters and FLOPs."""
from __future__ import annotations

from .module import Module


def _leaves(module: Module, prefix=""):
    if not module._modules:
        yield prefix, module
        return
    for name, child in module._modules.items():
        yield from _leaves(child, f"{prefix}.{name}" if prefix else name)


def _fmt_shape(shape):
    return "x".join(str(s) for s in shape[1:])


def layer_table(model: Module, input_shape):
    """[(name, layer, output_shape, params, flops)], or ValueError naming the layer where the input is too small."""
    shape = tuple(int(s) for s in input_shape)
    if len(shape) == 3:
        shape = (1,) + shape
    rows = []
    for name, layer in _leaves(model):
        try:
            out = layer.output_shape(shape)
            flops = layer.flops(shape)
        except ValueError as e:
            arch = getattr(model, "arch", type(model).__name__)
            raise ValueError(f"{arch}: input {_fmt_shape((1,) + tuple(input_shape)[-3:])} is too small or does not fit at layer "
                             f"{name}: {e}") from None
        params = sum(p.numel for p in layer.parameters())
        rows.append((name, layer, out, params, flops))
        shape = out
    return rows


def summary(model: Module, input_shape, file=None, print_fn=print) -> str:
    rows = layer_table(model, input_shape)
    shape = tuple(input_shape)
    if len(shape) == 3:
        shape = (1,) + shape
    header = ("layer", "type", "output (CxHxW)", "params", "FLOPs")
    body = [("input", "", _fmt_shape(shape), "", "")]
    for name, layer, out, params, flops in rows:
        desc = f"{type(layer).__name__}({layer.extra_repr()})"
        body.append((name, desc, _fmt_shape(out), f"{params:,}", f"{flops:,}"))
    total_p = sum(r[3] for r in rows)
    total_f = sum(r[4] for r in rows)
    widths = [max(len(r[i]) for r in [header] + body) for i in range(5)]

    def line(r):
        return "  ".join(c.ljust(w) if i < 3 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths)))

    sep = "-" * len(line(header))
    arch = getattr(model, "arch", type(model).__name__)
    out = [f"{arch} on input {_fmt_shape(shape)} (batch {shape[0]})", sep, line(header), sep]
    out += [line(r) for r in body]
    out += [sep, f"total parameters: {total_p:,}", f"total FLOPs per forward pass: {total_f:,} "
            f"(a multiply-add counts 2; {total_f / 1e6:,.2f} MFLOPs)", f"parameter memory (float32): {total_p * 4 / 2**20:,.2f} MiB"]
    text = "\n".join(out)
    if print_fn is not None:
        print_fn(text, file=file) if print_fn is print else print_fn(text)
    return text
