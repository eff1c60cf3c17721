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


def positive_int(text):
    """An integer >= 1."""
    v = _number(int, text)
    if v < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer (1 or more), got {text!r}")
    return v


def nonnegative_int(text):
    """An integer >= 0."""
    v = _number(int, text)
    if v < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, got {text!r}")
    return v


def positive_float(text):
    """A finite number > 0."""
    v = _number(float, text)
    if v <= 0:
        raise argparse.ArgumentTypeError(f"must be a finite number above 0, got {text!r}")
    return v


def nonnegative_float(text):
    """A finite number >= 0."""
    v = _number(float, text)
    if v < 0:
        raise argparse.ArgumentTypeError(f"must be a finite number, 0 or more, got {text!r}")
    return v


def fraction(text):
    """A number in [0, 1)."""
    v = _number(float, text)
    if not 0 <= v < 1:
        raise argparse.ArgumentTypeError(f"must be in [0, 1) (0: none), got {text!r}")
    return v


def momentum(text):
    """A number in [0, 1)."""
    v = _number(float, text)
    if not 0 <= v < 1:
        raise argparse.ArgumentTypeError(f"must be in [0, 1), got {text!r}")
    return v


def existing_folder(text):
    """A path to a folder that exists."""
    from pathlib import Path

    p = Path(text)
    if not p.exists():
        raise argparse.ArgumentTypeError(f"folder {text!r} does not exist")
    if not p.is_dir():
        raise argparse.ArgumentTypeError(f"{text!r} is not a folder")
    return text


def fail(flag: str, value, rule: str) -> int:
    """Print one error line naming the flag, the value and the rule broken; returns exit status 2."""
    print(f"error: {flag} {value}: {rule}", file=sys.stderr)
    return 2
