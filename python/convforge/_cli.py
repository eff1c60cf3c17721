"""Command-line argument checks, in one place: argparse ``type=`` functions whose errors name the rule
and the value (argparse adds the flag), and a parser that reports a bad argument in one line."""
from __future__ import annotations

import argparse
import math
import sys


class Parser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are one line (``convforge train: error: argument --epochs: ...``) and
    exit status 2, without the usage block; its sub-parsers are of the same class. Defaults are shown in
    ``--help`` once, by the formatter, for options that have a help text that does not already say them."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    def _get_help_string(self, action):
        text = action.help or ""
        if "default" in text or action.default in (None, False, argparse.SUPPRESS) or not text:
            return text
        return super()._get_help_string(action)


def _number(kind, text):
    try:
        v = kind(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not {'an integer' if kind is int else 'a number'}") from None
    if kind is float and not math.isfinite(v):
        raise argparse.ArgumentTypeError(f"must be a finite number, got {text!r}")
    return v


def _ranged(kind, ok, rule: str, doc: str):
    """An argparse type: text read as kind (int or finite float), then ok(value) or the error 'must be rule'."""
    def check(text):
        v = _number(kind, text)
        if not ok(v):
            raise argparse.ArgumentTypeError(f"must be {rule}, got {text!r}")
        return v

    check.__doc__ = doc
    return check


positive_int = _ranged(int, lambda v: v >= 1, "a positive integer (1 or more)", "An integer >= 1.")
nonnegative_int = _ranged(int, lambda v: v >= 0, "0 or more", "An integer >= 0.")
positive_float = _ranged(float, lambda v: v > 0, "a finite number above 0", "A finite number > 0.")
nonnegative_float = _ranged(float, lambda v: v >= 0, "a finite number, 0 or more", "A finite number >= 0.")
fraction = _ranged(float, lambda v: 0 <= v < 1, "in [0, 1) (0: none)", "A number in [0, 1), 0 meaning none.")
momentum = _ranged(float, lambda v: 0 <= v < 1, "in [0, 1)", "A momentum factor in [0, 1).")


def fail(flag: str, value, rule: str) -> int:
    """Print one error line naming the flag, the value and the rule broken; returns exit status 2."""
    print(f"error: {flag} {value}: {rule}", file=sys.stderr)
    return 2
