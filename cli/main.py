"""Root of the `faceid-jobs` command: builds the app from one module per command."""

from __future__ import annotations

import typer

from faceid_jobs.cli import (
    annotate,
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

app = typer.Typer(
    name="faceid-jobs",
    help="Find people in video archives by their faces.",
    no_args_is_help=True,
    rich_markup_mode="rich",
    # Locals can hold keys and tokens: never print them in tracebacks.
    pretty_exceptions_show_locals=False,
)
app.command("process")(process.process)
app.command("search")(search.search)
app.command("doctor")(doctor.doctor)
app.command("export")(export.export)
app.command("deploy")(flows_cmd.deploy)
app.command("serve")(flows_cmd.serve)
app.command("api")(api_cmd.api)
app.command("enroll")(enroll.enroll)
app.command("find")(find.find)
app.command("verify")(verify.verify)
app.command("forget")(forget.forget)
app.command("relabel")(relabel.relabel)
app.command("annotate")(annotate.annotate)
app.add_typer(identities.app, name="identities")
app.add_typer(index_cmd.app, name="index")
app.add_typer(keys.app, name="keys")
app.add_typer(people_cmd.app, name="people")


def main() -> None:
    """Console-script entry point."""
    app()


if __name__ == "__main__":
    main()
