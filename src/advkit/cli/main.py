"""The ``advkit`` command: a click group; each command lives in its own module.

Exit codes: 0 ok · 1 a gate or comparison failed · 2 usage/config error · 3 evaluation aborted ·
5 training stopped at chance level (no model written).
"""
from __future__ import annotations

import importlib
import logging
import sys

import click

from ..errors import (AdvkitError, ConfigError, DataError, EvaluationAborted, InputError, ModelError,
                      TrainingStalled)

EXIT_OK, EXIT_GATE, EXIT_USAGE, EXIT_ABORTED = 0, 1, 2, 3
EXIT_STALLED = 5

# (module, attribute) of each command, in the order `advkit --help` lists them.
COMMANDS = [
    ("evaluate", "evaluate"), ("attack", "attack"), ("certify", "certify"), ("train", "train"),
    ("report", "report"), ("history", "history"), ("gate", "gate"), ("compare", "compare"),
    ("inspect", "inspect"), ("list_cmd", "list_"),
]


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(package_name="advkit")
@click.option("-v", "--verbose", count=True, help="More log output (-vv for debug).")
def cli(verbose: int) -> None:
    """advkit: how robust is this image classifier, really, and how do I make it more robust?"""
    level = logging.WARNING - 10 * min(verbose, 2)
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")


for _mod, _attr in COMMANDS:
    try:
        _m = importlib.import_module(f"advkit.cli.{_mod}")
    except ModuleNotFoundError as e:  # a command still being written
        if e.name != f"advkit.cli.{_mod}":
            raise
        continue
    cli.add_command(getattr(_m, _attr))


def main(argv=None) -> int:
    """Entry point: maps advkit errors to exit codes and one-line messages."""
    from .render import err_console
    try:
        # In non-standalone mode click returns the code of ``ctx.exit(code)`` instead of raising it.
        rv = cli.main(args=argv, prog_name="advkit", standalone_mode=False)
    except click.exceptions.Exit as e:
        return e.exit_code
    except click.ClickException as e:
        e.show()
        return EXIT_USAGE
    except click.exceptions.Abort:
        err_console.print("aborted")
        return EXIT_ABORTED
    except EvaluationAborted as e:
        err_console.print(f"[red]evaluation aborted:[/red] {e}")
        return EXIT_ABORTED
    except TrainingStalled as e:
        err_console.print(f"[red]error:[/red] {e}")
        return EXIT_STALLED
    except (ConfigError, InputError, DataError, ModelError) as e:
        err_console.print(f"[red]error:[/red] {e}")
        return EXIT_USAGE
    except AdvkitError as e:
        err_console.print(f"[red]error:[/red] {e}")
        return EXIT_USAGE
    except SystemExit as e:
        return e.code if isinstance(e.code, int) else 1
    return rv if isinstance(rv, int) and not isinstance(rv, bool) else EXIT_OK


def run() -> None:  # pragma: no cover - console script shim
    sys.exit(main())


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
