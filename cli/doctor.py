"""`faceid-jobs doctor`: what would run, on what, with which files."""

from __future__ import annotations

import typer
from faceid_jobs.cli.common import (
    ConfigOpt,
    DeviceOpt,
    JsonOpt,
    StoreOpt,
    WeightsOpt,
    exits_on_user_error,
    out,
    print_json,
    settings_from,
)
from rich.table import Table

from faceid_jobs.errors import ExitCode, FaceIdError


@exits_on_user_error
def doctor(
    json_out: JsonOpt = False,
    store: StoreOpt = None,
    weights_dir: WeightsOpt = None,
    device: DeviceOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Check the set-up: execution providers, model files (sha256, shapes), store access.

    Exits non-zero when a model cannot be loaded or the store is not writable.
    """
    from faceid_jobs.models import describe_models, load_models
    from faceid_jobs.runtime import available_providers
    from faceid_jobs.storage import open_store

    settings = settings_from(config, store=store, weights_dir=weights_dir, device=device)
    report: dict = {
        "device": settings.device,
        "available_providers": available_providers(),
        "weights_dir": str(settings.resolved_weights_dir()),
    }
    problems: list[str] = []
    try:
        models = load_models(settings)
        report["providers"] = models.providers
        report["models"] = describe_models(models)
        report["embedding_dim"] = models.embedder.dim
    except FaceIdError as exc:
        problems.append(str(exc))
        report["models"] = []
    try:
        target = open_store(settings.store)
        target.check()
        report["store"] = {"uri": target.uri, "reachable": True}
    except FaceIdError as exc:
        problems.append(str(exc))
        report["store"] = {"uri": settings.store, "reachable": False}
    report["problems"] = problems

    if json_out:
        print_json(report)
    else:
        head = Table(show_header=False, title="faceid-jobs doctor", title_justify="left")
        head.add_column(style="bold")
        head.add_column()
        head.add_row("device setting", settings.device)
        head.add_row("providers available", ", ".join(report["available_providers"]))
        head.add_row("providers chosen", ", ".join(report.get("providers", [])) or "-")
        head.add_row("weights dir", report["weights_dir"])
        head.add_row("embedding dim", str(report.get("embedding_dim", "-")))
        head.add_row("store", f"{report['store']['uri']} "
                     f"({'writable' if report['store']['reachable'] else 'NOT reachable'})")
        out.print(head)
        if report["models"]:
            table = Table(title="models", title_justify="left")
            for col in ("role", "file", "sha256", "inputs", "outputs"):
                table.add_column(col, overflow="fold")
            for m in report["models"]:
                table.add_row(m["role"], m["file"], m["sha256"][:16] + "…",
                              "\n".join(m["inputs"]), "\n".join(m["outputs"]))
            out.print(table)
        for p in problems:
            out.print(f"[red]problem:[/red] {p}", highlight=False, soft_wrap=True)
    if problems:
        raise typer.Exit(int(ExitCode.MODEL))
