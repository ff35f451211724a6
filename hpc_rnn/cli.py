"""What every command shares: user mistakes end in one line and a non-zero exit, never a traceback."""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from typing import Any, NoReturn, TextIO

from hpc_rnn.heap import keep_freed_memory


class UserError(Exception):
    """A mistake the user can fix (bad path, bad option, wrong data); the message says how."""


EXIT_USER_ERROR = 2
# Local time to the second: what a line in a job's log took place at, beside the other jobs' logs.
STAMP_FORMAT = "%Y-%m-%dT%H:%M:%S"


def say(line: str, file: TextIO | None = None) -> None:
    """Print a line of a command's long work (progress, notes, warnings) after the time it is
    printed, flushed at once for a log that is being followed. `error:` lines never go through
    here: they stay exactly `error: ...`, to be grepped."""
    print(f"{time.strftime(STAMP_FORMAT)} {line}", file=file or sys.stdout, flush=True)


class Parser(argparse.ArgumentParser):
    """argparse whose mistakes are a UserError, so that inside `run_main` they end in one
    `error:` line like every other mistake instead of a usage dump."""

    def error(self, message: str) -> NoReturn:
        raise UserError(f"{message} (see {self.prog} --help)")


EXIT_CODES = {0: "done", EXIT_USER_ERROR: "a mistake in the input: one error line, nothing changed"}


def command_parser(
    prog: str, doc: str, exit_codes: dict[int, str] | None = None, **kwargs: Any
) -> Parser:
    """The parser of a command: its module docstring (with the usage examples) as the
    description, its exit codes as the epilog, line breaks kept."""
    codes = {**EXIT_CODES, **(exit_codes or {})}
    return Parser(
        prog=f"python -m {prog}",
        description=doc.strip(),
        epilog="exit codes:\n"
        + "\n".join(f"  {c:>3}  {what}" for c, what in sorted(codes.items())),
        formatter_class=argparse.RawDescriptionHelpFormatter,
        **kwargs,
    )


def run_main(main: Callable[[], int | None]) -> int:
    """Run a command's body; a `UserError` becomes `error: ...` on stderr and exit code 2."""
    keep_freed_memory()
    try:
        return int(main() or 0)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr, flush=True)
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr, flush=True)
        return 130
