"""Argument parsing that reports mistakes in one line, and the error type of the commands."""

from __future__ import annotations

import argparse
import sys

# The benchmarks, which the command line runs, share the parser: it lives below both.
from fastrec.bench._common import EXIT_USAGE, Parser

# Longest error message printed: a message that quotes a whole array says nothing more past this.
MAX_MESSAGE = 400


class CliError(Exception):
    """A mistake of the user (bad file, column or option): one line on stderr, exit code 2."""


THREADS_HELP = "threads, at most 4 per logical CPU (default: every usable core)"


def threads(text: str) -> int:
    """The ``--threads`` option: an integer >= 1, cut to the library's ceiling (a note says so)."""
    from fastrec._runtime import max_threads

    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be an integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    if value > max_threads():
        print(f"note: --threads {value} is more than fastrec runs; using {max_threads()}", file=sys.stderr)
    return min(value, max_threads())


def fail(prog: str, message: str) -> int:
    """Print ``prog: error: message`` (one line) to stderr and return the usage exit code."""
    one_line = " ".join(str(message).split())
    if len(one_line) > MAX_MESSAGE:
        one_line = one_line[: MAX_MESSAGE - 1] + "…"
    print(f"{prog}: error: {one_line}", file=sys.stderr)
    return EXIT_USAGE


__all__ = ["EXIT_USAGE", "MAX_MESSAGE", "THREADS_HELP", "CliError", "Parser", "fail", "threads"]
