"""Argument parsing that reports mistakes in one line, and the error type of the commands."""

from __future__ import annotations

import argparse
import sys
from typing import NoReturn

EXIT_USAGE = 2
# Longest error message printed: a message that quotes a whole array says nothing more past this.
MAX_MESSAGE = 400


class CliError(Exception):
    """A mistake of the user (bad file, column or option): one line on stderr, exit code 2."""


class Parser(argparse.ArgumentParser):
    """An ``ArgumentParser`` whose errors are one line on stderr and exit code 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


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
        print(f"note: --threads {value} is more than fastrec runs; using {max_threads()}",
              file=sys.stderr)
    return min(value, max_threads())


def fail(prog: str, message: str) -> int:
    """Print ``prog: error: message`` (one line) to stderr and return the usage exit code."""
    one_line = " ".join(str(message).split())
    if len(one_line) > MAX_MESSAGE:
        one_line = one_line[: MAX_MESSAGE - 1] + "…"
    print(f"{prog}: error: {one_line}", file=sys.stderr)
    return EXIT_USAGE
