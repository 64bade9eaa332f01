"""`faceid-jobs audit`: the audit trail (who enrolled, removed or forgot what, and when)."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from faceid_jobs.cli.common import STORE, Opts, command, out, print_json, shown


@command(*STORE)
def audit(
    name: Annotated[str | None, typer.Option(
        "--name", help="Only the records about this identity (enrolled now or not).",
        show_default=False)] = None,
    *,
    opts: Opts,
) -> None:
    """List the audit records, oldest first: when, who, what was done, to which identities.

    Records keep identity names only as keyed hashes. With the key, the names of the identities
    enrolled now are shown; others show as [bold]#hash[/bold]. [bold]--name NAME[/bold] finds the
    records of a name you know, forgotten ones included.

    Example: [bold]faceid-jobs audit --name Ross[/bold]
    """
    from faceid_jobs.identity.audit import history, list_audit, resolve
    from faceid_jobs.identity.gallery import load_gallery_version
    from faceid_jobs.workspace import open_workspace

    ws = open_workspace(opts.settings())
    records = list_audit(ws.store)
    if name is not None:
        entries = history(ws.keys, records, name)
    else:
        manifest = load_gallery_version(ws)
        entries = resolve(ws.keys, records, manifest.identities if manifest else [])
    if opts.json_out:
        print_json({"records": [e.to_json() for e in entries]})
        return
    table = Table(title_justify="left", title=f"{len(entries)} audit records")
    for col in ("at", "who", "action", "identities", "details"):
        table.add_column(col)
    for e in entries:
        who = f"{e.who.get('user', '?')}@{e.who.get('host', '?')}"
        details = " ".join(f"{k}={v}" for k, v in sorted(e.what.items()))
        # Names, hosts and details come from the store: shown as plain text, one line each.
        table.add_row(*(shown(v) for v in (e.at, who, e.action, ", ".join(e.identities), details)))
    out.print(table)
