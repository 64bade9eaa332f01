"""`faceid-jobs export --plaintext DIR`: decrypted Parquet copies of the records."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from faceid_jobs.cli.common import STORE, Opts, command, note, out, shown, working
from faceid_jobs.errors import ConfigError


@command(*STORE, json_output=False)
def export(
    folder: Annotated[Path, typer.Argument(help="Output folder (new, or empty and 0700).", show_default=False)],
    plaintext: Annotated[bool, typer.Option("--plaintext", help="Required: confirms the output is "
                                            "unencrypted biometric data.")] = False,
    force: Annotated[bool, typer.Option("--force", help="Write into an existing folder that is not empty "
                                        "or not mode 0700.")] = False,
    *,
    opts: Opts,
) -> None:
    """Write decrypted copies of every current record file (and of search-photos results), for DuckDB/pandas.

    Example: [bold]faceid-jobs export --plaintext ./records-plain[/bold]
    """
    if not plaintext:
        raise ConfigError("export writes unencrypted biometric data: pass --plaintext to confirm")
    from faceid_jobs.records.export import export_plaintext
    from faceid_jobs.workspace import open_workspace

    with working("decrypting record files…"):
        result = export_plaintext(open_workspace(opts.settings()), folder, force=force)
    runs = f", results of {result.query_runs} search runs" if result.query_runs else ""
    out.print(f"wrote {result.files} files, {result.rows} face rows{runs} to {shown(result.folder)}")
    note("these files are plaintext biometric data: keep them on an encrypted disk", "note")
