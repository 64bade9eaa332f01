"""Root of the `faceid-jobs` command: builds the app from one module per command."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from faceid_jobs.cli import (
    annotate,
    audit,
    doctor,
    enroll,
    export,
    find,
    flows_cmd,
    forget,
    identities,
    index_cmd,
    keys,
    process,
    relabel,
    search,
    verify,
)
from faceid_jobs.cli import api as api_cmd
from faceid_jobs.cli import people as people_cmd
from faceid_jobs.cli.quick_exit import run_then_exit

app = typer.Typer(
    name="faceid-jobs",
    help="Find people in video archives by their faces.",
    no_args_is_help=True,
    rich_markup_mode="rich",
    # Locals can hold keys and tokens: never print them in tracebacks.
    pretty_exceptions_show_locals=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        from importlib.metadata import version

        typer.echo(f"faceid-jobs {version('faceid-jobs')}")
        raise typer.Exit()


@app.callback()
def root(
    version: Annotated[bool, typer.Option("--version", help="Print the version and exit.",
                                          callback=_version, is_eager=True)] = False,
) -> None:
    """Find people in video archives by their faces."""


for _name, _command in (
    ("process", process.process),
    ("search", search.search),
    ("doctor", doctor.doctor),
    ("export", export.export),
    ("deploy", flows_cmd.deploy),
    ("serve", flows_cmd.serve),
    ("api", api_cmd.api),
    ("enroll", enroll.enroll),
    ("find", find.find),
    ("verify", verify.verify),
    ("forget", forget.forget),
    ("relabel", relabel.relabel),
    ("annotate", annotate.annotate),
    ("audit", audit.audit),
):
    app.command(_name)(_command)
app.add_typer(identities.app, name="identities")
app.add_typer(index_cmd.app, name="index")
app.add_typer(keys.app, name="keys")
app.add_typer(people_cmd.app, name="people")


def main() -> None:
    """Console-script entry point (the exit status survives Arrow's exit-time aborts: `quick_exit`)."""
    run_then_exit(_main)


def _main() -> None:
    """With --json, usage errors too are one JSON object on stdout."""
    if "--json" not in sys.argv[1:]:
        app()
        return
    from faceid_jobs.cli.common import print_json

    try:
        code = app(standalone_mode=False)
    except typer.Abort:
        print_json({"error": "interrupted", "code": "interrupted", "exit": 130})
        sys.exit(130)
    except Exception as exc:
        # Click's usage errors (Typer bundles its own Click, so matched by their interface).
        if not callable(getattr(exc, "format_message", None)):
            raise
        print_json({"error": exc.format_message(), "code": "usage", "exit": exc.exit_code})
        sys.exit(exc.exit_code)
    sys.exit(code if isinstance(code, int) else 0)


if __name__ == "__main__":
    main()
