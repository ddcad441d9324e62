"""Command-line shell: parses arguments, then calls the Python API.

Every sub-command lives in ``stemscribe/commands/<name>.py`` and exposes
``register(subparsers) -> argparse.ArgumentParser`` and ``run(args) -> int``. Heavy libraries are
imported inside ``run`` so ``stemscribe --help`` stays instant. A :class:`StemscribeError` becomes
one line on stderr and a non-zero exit; ``--debug`` shows the traceback.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from . import __version__
from .errors import StemscribeError

#: Sub-command modules under ``stemscribe.commands``, in the order ``--help`` lists them.
COMMANDS: tuple[str, ...] = (
    "split",
    "transcribe",
    "models",
    "eval",
    "live",
    "serve",
    "render",
    "capture",
    "roll",
    "accompany",
    "specimage",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="stemscribe",
        description="Split songs into stems and per-stem MIDI with the song's tempo.",
    )
    parser.add_argument("--version", action="version", version=f"stemscribe {__version__}")
    parser.add_argument("--debug", action="store_true", help="show full tracebacks on errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        try:
            module = importlib.import_module(f"stemscribe.commands.{name}")
        except ModuleNotFoundError as exc:  # a command not built yet
            if exc.name == f"stemscribe.commands.{name}":
                continue
            raise
        p = module.register(sub)
        p.set_defaults(_run=module.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "_run", None):
        parser.print_help()
        return 0
    try:
        return int(args._run(args) or 0)
    except StemscribeError as exc:
        if args.debug:
            raise
        print(f"stemscribe: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("stemscribe: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
