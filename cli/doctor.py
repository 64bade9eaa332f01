"""`faceid-jobs doctor`: what would run, on what, with which files."""

from __future__ import annotations

import typer
from rich.table import Table

from faceid_jobs.cli.common import SETTINGS, Opts, command, out, print_json, shown
from faceid_jobs.errors import ExitCode, FaceIdError


@command(*SETTINGS)
def doctor(*, opts: Opts) -> None:
    """Check the set-up: providers, models (sha256, shapes), video decoding, store, key, index, API,
    and operations left unfinished (a key rotation, a forget) with the command that finishes each.

    Exits non-zero when a model cannot be loaded, the store is not writable or the
    key or index cannot be read. Never prints key material or the API token.

    Example: [bold]faceid-jobs doctor --json[/bold]
    """
    from faceid_jobs.models import describe_models, load_models
    from faceid_jobs.models.runtime import available_providers
    from faceid_jobs.storage import open_store

    settings = opts.settings()
    report: dict = {
        "device": settings.device,
        "available_providers": available_providers(),
        "weights_dir": str(settings.resolved_weights_dir()),
    }
    problems: list[str] = []
    model_problem = False
    try:
        models = load_models(settings)
        report["providers"] = models.providers
        report["models"] = describe_models(models)
        report["embedding_dim"] = models.embedder.dim
    except FaceIdError as exc:
        problems.append(str(exc))
        report["models"] = []
        model_problem = True
    try:
        target = open_store(settings.store)
        target.check()
        report["store"] = {"uri": target.uri, "reachable": True}
    except FaceIdError as exc:
        problems.append(str(exc))
        report["store"] = {"uri": settings.store, "reachable": False}
    report.update(_more_checks(settings, problems))
    report["problems"] = problems

    if opts.json_out:
        print_json(report)
    else:
        head = Table(show_header=False, title="faceid-jobs doctor", title_justify="left")
        head.add_column(style="bold")
        head.add_column()
        head.add_row("device setting", shown(settings.device))
        head.add_row("providers available", shown(", ".join(report["available_providers"])))
        head.add_row("providers chosen", shown(", ".join(report.get("providers", [])) or "-"))
        head.add_row("weights dir", shown(report["weights_dir"]))
        head.add_row("embedding dim", str(report.get("embedding_dim", "-")))
        head.add_row("store", f"{shown(report['store']['uri'])} "
                     f"({'writable' if report['store']['reachable'] else 'NOT reachable'})")
        head.add_row("video decoding", "OpenCV + FFmpeg" if report["video_decoding"] else "NO FFmpeg backend")
        head.add_row("key", shown(report["key"]["status"]))
        head.add_row("index", shown(report["index"]["status"]))
        for line in report["pending"]:
            head.add_row("[red]unfinished[/red]", shown(line))
        head.add_row("api token", "set" if report["api"]["token_set"] else "not set (FACEID_JOBS_API_TOKEN)")
        head.add_row("versions", shown(", ".join(f"{k} {v}" for k, v in report["versions"].items())))
        out.print(head)
        if report["models"]:
            table = Table(title="models", title_justify="left")
            for col in ("role", "file", "sha256", "inputs", "outputs"):
                table.add_column(col, overflow="fold")
            for m in report["models"]:
                table.add_row(shown(m["role"]), shown(m["file"]), shown(m["sha256"][:16]) + "…",
                              "\n".join(map(shown, m["inputs"])), "\n".join(map(shown, m["outputs"])))
            out.print(table)
        for p in problems:
            # Problems quote the store (key ids, object names): escaped like any string it controls.
            out.print(f"[red]problem:[/red] {shown(p)}", highlight=False, soft_wrap=True)
    if problems:
        # The key this store needs is missing or different: exit 4, as every other command would.
        wrong_key = report["key"].get("status", "").startswith("WRONG")
        raise typer.Exit(int(ExitCode.INTEGRITY if wrong_key and not model_problem else ExitCode.MODEL))


def _more_checks(settings, problems: list[str]) -> dict:
    """Video decoding, key, index, API token and package versions (no secret is ever shown)."""
    import platform
    from importlib.metadata import PackageNotFoundError, version

    import cv2

    from faceid_jobs.crypto.marker import check_key, required_key
    from faceid_jobs.index import list_versions, load_manifest
    from faceid_jobs.storage import open_store
    from faceid_jobs.workspace import open_workspace

    versions = {"python": platform.python_version()}
    for pkg in ("faceid-jobs", "onnxruntime-gpu", "opencv-python-headless", "faiss-cpu", "numpy", "pyarrow",
                "fastapi", "uvicorn", "prefect"):
        try:
            versions[pkg] = version(pkg)
        except PackageNotFoundError:
            versions[pkg] = "-"
    ffmpeg = cv2.CAP_FFMPEG in cv2.videoio_registry.getBackends()
    if not ffmpeg:
        problems.append("OpenCV has no FFmpeg backend: videos cannot be decoded")
    found = {"video_decoding": ffmpeg, "key": {"status": "-"}, "index": {"status": "-", "version": None},
             "versions": versions, "api": {"token_set": bool(settings.api_token)}, "pending": []}
    try:
        store_ = open_store(settings.store)
        newest = (list_versions(store_) or [None])[-1]
    except FaceIdError:
        return found  # the store check above reported it
    try:
        found["pending"] = _unfinished(store_)
    except FaceIdError as exc:
        problems.append(str(exc))
    index: dict = found["index"]
    fresh = not (settings.kms_key_id or settings.resolved_key_file().exists()) and not _env_key()
    needed = None
    try:
        needed, _ = required_key(store_)
        if fresh:
            check_key(store_, needed, [])
    except FaceIdError as exc:
        return found | {"key": _key_failure(exc, needed, problems)}
    if fresh:
        key = {"status": f"none yet ({settings.resolved_key_file()} is created by the first process)"}
    else:
        key: dict = {}
        try:
            ws = open_workspace(settings, store=store_)
            key_id = ws.keys.keyring.primary.key_id
            key = {"status": f"{key_id} (readable)", "key_id": key_id}
            if newest is not None:
                m = load_manifest(ws.store, ws.keys, newest)
                index = {"status": f"version {newest}: {m.vectors} vectors in {len(m.shards)} shards, "
                                   f"by {m.index_by}", "version": newest, "vectors": m.vectors}
        except FaceIdError as exc:
            key = _key_failure(exc, needed, problems, key if key.get("key_id") else None)
    if newest is None:
        index = {"status": "none yet (run `faceid-jobs process`)", "version": None}
    elif index["version"] is None and not fresh:
        index = {"status": f"version {newest} (cannot be read)", "version": newest}
    return found | {"key": key, "index": index}


def _unfinished(store) -> list[str]:
    """One line per operation left half done (a key rotation, a forget) with the command that finishes it.

    Raises:
        FaceIdError: the store cannot be listed or the lease is damaged.
    """
    from faceid_jobs.crypto.lease import read_lease
    from faceid_jobs.identity.intent import pending_intents

    lease = read_lease(store)
    lines = [f"key {lease.describe()}"] if lease else []
    lines += [f"{key}: a forget was interrupted; finish it with `faceid-jobs forget --resume`"
              for key in pending_intents(store)]
    return lines


def _key_failure(exc: FaceIdError, needed: str | None, problems: list[str], readable: dict | None = None) -> dict:
    """The key row for a failed key check: WRONG (with the key the store needs) for a mismatch, else
    NOT readable (or `readable`, what was learnt before the failure)."""
    from faceid_jobs.errors import KeyMismatchError

    problems.append(str(exc))
    if isinstance(exc, KeyMismatchError):
        return {"status": f"WRONG: {exc}", "needed": needed}
    return readable or {"status": f"NOT readable: {exc}"}


def _env_key() -> bool:
    import os

    from faceid_jobs.workspace import KEY_ENV

    return bool(os.environ.get(KEY_ENV))
