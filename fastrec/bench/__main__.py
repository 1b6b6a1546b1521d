"""``python -m fastrec.bench NAME|all [options]``: run side-by-side benchmarks."""

from __future__ import annotations

import importlib
import sys

from fastrec.bench import BENCHMARKS


def main(argv: list[str] | None = None, prog: str = "python -m fastrec.bench") -> int:
    """Run benchmark ``argv[0]`` (a registered name, or ``all``) with the options that follow."""
    from fastrec.bench import suite

    argv = list(sys.argv[1:] if argv is None else argv)
    names = ", ".join([*sorted(BENCHMARKS), "all"])
    if not argv or argv[0] in ("-h", "--help"):
        print(f"usage: {prog} {{{names}}} [options]  (NAME --help for the options)")
        return 0 if argv else 2
    name, rest = argv[0], argv[1:]
    if name == "all":
        return suite.main(suite.registered(), rest, f"{prog} all")
    if name not in BENCHMARKS:
        print(f"{prog}: error: unknown benchmark {name!r}; choose one of {names}", file=sys.stderr)
        return 2
    module = importlib.import_module(BENCHMARKS[name])
    return module.main(rest, prog=f"{prog} {name}")


if __name__ == "__main__":
    sys.exit(main())
