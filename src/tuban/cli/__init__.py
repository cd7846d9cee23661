"""The ``tuban`` command line: argument parsing only.

Each command group lives in its own module ``tuban.cli.<name>`` exposing
``register(subparsers)``; handlers import the library lazily and hold no logic of
their own. Errors of the :class:`tuban.errors.TubanError` tree print one line and
exit with the error's stable code; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

import tuban
from tuban.errors import TubanError

__all__ = ["build_parser", "main"]

#: command modules, in the order they appear in ``tuban --help``
COMMAND_MODULES = (
    "init",
    "db",
    "user",
    "importing",
    "exporting",
    "detect",
    "quicklook",
    "evaluate",
    "analyse",
    "demo",
    "serve",
    "worker",
)


def add_workspace_option(parser: argparse.ArgumentParser) -> None:
    """The ``--workspace DIR`` option every command takes."""
    parser.add_argument(
        "--workspace",
        "-w",
        metavar="DIR",
        default=None,
        help="workspace folder (default: $TUBAN_WORKSPACE, else the current directory)",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tuban",
        description="tuban (图斑): satellite supervision of construction disturbance patches.",
    )
    parser.add_argument("--version", action="version", version=f"tuban {tuban.__version__}")
    parser.add_argument(
        "--show-versions", action="store_true", help="print tuban, GDAL, PROJ, GEOS, numpy, SQLite versions"
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(f"tuban.cli.{name}")
        except ModuleNotFoundError as exc:  # a command whose module is not written yet
            if exc.name == f"tuban.cli.{name}":
                continue
            raise
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        if args.show_versions:
            from tuban.versions import show_versions

            for key, value in show_versions(getattr(args, "workspace", None)).items():
                print(f"{key:>10}: {value}")
            return 0
        if not getattr(args, "func", None):
            parser.print_help()
            return 2
        result = args.func(args)
        return int(result or 0)
    except TubanError as exc:
        print(f"tuban: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("tuban: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
