"""The ``advkit`` command: a click group; each command lives in its own module.

Exit codes (one meaning each, README "Exit codes"):

- 0 ok
- 1 a gate or comparison failed (and nothing else)
- 2 usage, configuration or input error (bad option, data, model, weights, unwritable output, ...)
- 3 evaluation aborted (a pre-flight check found an error)
- 4 internal error: an exception advkit did not expect ("advkit bug: please report"); the traceback is
  printed only with ``-v``
- 5 training stopped at chance level (``advkit train``)
- 6 the model misbehaved while advkit ran it (non-finite logits, an exception or ``SystemExit`` from its own
  code, a wrong output shape on some batch): :class:`~advkit.errors.ModelFault`
- 7 results could not be written (full disk, I/O error on the output or the history database):
  :class:`~advkit.errors.StoreWriteError`; the run is never recorded as complete
- 8 the experiment tracker (``--mlflow``) could not be reached; the results are in the local history
- 130 interrupted (Ctrl-C)
"""
from __future__ import annotations

import importlib
import logging
import sys

import click

from ..errors import (AdvkitError, AttackBug, ConfigError, DataError, EvaluationAborted, InputError, ModelError,
                      ModelFault, StoreWriteError, TrackerUnreachable, TrainingStalled)

EXIT_OK, EXIT_GATE, EXIT_USAGE, EXIT_ABORTED, EXIT_INTERNAL, EXIT_CHANCE = 0, 1, 2, 3, 4, 5
EXIT_MODEL_FAULT, EXIT_WRITE_FAILED = 6, 7
EXIT_STALLED = EXIT_CHANCE  # training stopped at chance level
EXIT_TRACKER = 8  # the experiment tracker could not be reached (results are in the local history)
EXIT_INTERRUPTED = 130

# (module, attribute) of each command, in the order `advkit --help` lists them.
COMMANDS = [
    ("evaluate", "evaluate"), ("attack", "attack"), ("certify", "certify"), ("train", "train"),
    ("report", "report"), ("history", "history"), ("gate", "gate"), ("compare", "compare"),
    ("inspect", "inspect"), ("list_cmd", "list_"),
]


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(package_name="advkit")
@click.option("-v", "--verbose", count=True, help="More log output (-vv for debug); show the traceback of an internal error (exit code 4).")
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


def _verbose(argv) -> bool:
    """``-v``/``--verbose`` before the command name (the group's option), or anywhere as a plain flag."""
    args = list(sys.argv[1:] if argv is None else argv)
    return any(a in ("--verbose",) or (a.startswith("-v") and set(a[1:]) == {"v"}) for a in args)


def _one_line(e: BaseException) -> str:
    text = " ".join(str(e).split())
    return text or type(e).__name__


def _say(kind: str, e: BaseException) -> None:
    from rich.markup import escape

    from .render import err_console
    err_console.print(f"[red]{kind}:[/red] {escape(_one_line(e))}", soft_wrap=True, highlight=False)


def _internal_error(e: BaseException, argv) -> int:
    import traceback

    from rich.markup import escape

    from .render import err_console
    if _verbose(argv):
        sys.stderr.write("".join(traceback.format_exception(type(e), e, e.__traceback__)))
    hint = "" if _verbose(argv) else " (rerun with -v for the traceback)"
    err_console.print(f"[red]advkit bug: please report[/red] it with the command line and `advkit --version`: "
                      f"{escape(type(e).__name__)}: {escape(_one_line(e))}{hint}", soft_wrap=True, highlight=False)
    return EXIT_INTERNAL


def _interrupted() -> int:
    from .render import err_console
    err_console.print("interrupted")
    return EXIT_INTERRUPTED


#: (error class, message prefix, exit code), the first match wins: subclasses before their bases
_CODES = ((EvaluationAborted, "evaluation aborted", EXIT_ABORTED), (TrainingStalled, "error", EXIT_STALLED),
          (ModelFault, "error", EXIT_MODEL_FAULT), (StoreWriteError, "error", EXIT_WRITE_FAILED),
          (TrackerUnreachable, "error", EXIT_TRACKER),
          ((ConfigError, InputError, DataError, ModelError), "error", EXIT_USAGE))


def _advkit_error(e: AdvkitError, argv) -> int:
    """An advkit error's one line and exit code (module docstring); ``AttackBug`` is advkit's own bug."""
    if isinstance(e, AttackBug):
        return _internal_error(e, argv)
    for cls, kind, code in _CODES:
        if isinstance(e, cls):
            _say(kind, e)
            return code
    _say("error", e)
    return EXIT_USAGE


def _unexpected(e: BaseException, argv) -> int:
    """An exception (or ``SystemExit``) advkit did not turn into an error: the model's fault when the model's
    own code raised it (exit 6), else a bug in advkit (exit 4); never a gate failure, never a silent 0."""
    from ..faults import raised, user_code_ref
    ref = user_code_ref(e.__traceback__)
    if ref is not None:
        _say("error", raised(ref, e))
        return EXIT_MODEL_FAULT
    if isinstance(e, SystemExit):
        return _internal_error(RuntimeError(f"SystemExit({e.code!r}) outside the model's code"), argv)
    return _internal_error(e, argv)


def main(argv=None) -> int:
    """Entry point: maps advkit errors to exit codes and one-line messages (module docstring)."""
    try:
        from ..sync import check_switches
        check_switches()  # a typo in ADVKIT_ACCELERATE / ADVKIT_SYNC_FREE fails every command up front
        # In non-standalone mode click returns the code of ``ctx.exit(code)`` instead of raising it.
        rv = cli.main(args=argv, prog_name="advkit", standalone_mode=False)
    except click.exceptions.Exit as e:
        return e.exit_code
    except click.ClickException as e:
        e.show()
        return EXIT_USAGE
    except click.exceptions.Abort as e:
        if isinstance(e.__cause__, KeyboardInterrupt) or e.__cause__ is None:
            return _interrupted()
        return _internal_error(e.__cause__, argv)  # click turns a stray EOFError into Abort
    except KeyboardInterrupt:
        return _interrupted()
    except AdvkitError as e:
        return _advkit_error(e, argv)
    except (SystemExit, Exception) as e:  # noqa: BLE001 - the model's own code, else a bug in advkit
        return _unexpected(e, argv)
    return rv if isinstance(rv, int) and not isinstance(rv, bool) else EXIT_OK


def run() -> None:  # pragma: no cover - console script shim
    sys.exit(main())


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
