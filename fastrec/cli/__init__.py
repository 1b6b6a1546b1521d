"""The ``fastrec`` command line: ``demo``, ``fit``, ``recommend``, ``bench`` and ``info``.

Each subcommand is one module of this package with ``add_parser(commands)``
and a ``run(args) -> int`` handler.  Mistakes of the user (a missing file, an
unknown column, a bad option) end with one line on stderr and exit code 2;
``--debug`` shows the traceback instead.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from fastrec.cli._parser import EXIT_USAGE, CliError, Parser, fail

COMMANDS = ("demo", "fit", "recommend", "bench", "info")

# Exceptions that mean the input or the options were wrong, not that fastrec failed:
# bad values and files, unknown ids (UnknownIdError is a KeyError), SGD divergence on the
# data (DivergenceError is a FloatingPointError), sizes too large for the machine.
USER_ERRORS = (
    CliError,
    ValueError,
    TypeError,
    OSError,
    KeyError,
    ImportError,
    FloatingPointError,
    OverflowError,
    MemoryError,
)


def build_parser() -> Parser:
    """The parser of every subcommand."""
    import importlib

    parser = Parser(
        prog="fastrec", description="fast recommender kernels: `fastrec COMMAND --help` for each command"
    )
    parser.add_argument("--debug", action="store_true", help="show tracebacks of errors")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND", parser_class=Parser)
    for name in COMMANDS:
        importlib.import_module(f"fastrec.cli.{name}").add_parser(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line with ``argv`` (default ``sys.argv[1:]``); returns the exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv[:1]
    if debug:
        argv = argv[1:]
    if argv and argv[0] == "bench":  # the benchmark modules parse their own options
        from fastrec.bench.__main__ import main as bench_main

        return _guarded(lambda: bench_main(argv[1:] or ["all"], prog="fastrec bench"), "fastrec bench", debug)
    args = build_parser().parse_args(argv)
    return _guarded(lambda: args.handler(args), f"fastrec {args.command}", debug)


def _guarded(call, prog: str, debug: bool) -> int:
    try:
        return int(call() or 0)
    except BrokenPipeError:  # e.g. `fastrec recommend model.npz | head`: stop quietly
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except USER_ERRORS as exc:
        if debug:
            raise
        message = str(exc.args[0]) if isinstance(exc, KeyError) and exc.args else str(exc)
        if isinstance(exc, MemoryError):
            message = (
                "not enough memory for what was asked (a size or count too large for this "
                f"machine){': ' + message if message else ''}"
            )
        return fail(prog, message or type(exc).__name__)
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return 130


__all__ = ["EXIT_USAGE", "CliError", "main"]
