"""`faceid-jobs keys`: create and rotate the key that protects the store's biometric data."""

from __future__ import annotations

from typing import Annotated

import typer

from faceid_jobs.cli.common import STORE, Opts, command, err, out, print_json, show_progress, shown, working

app = typer.Typer(help="Create, show and rotate the encryption key.", no_args_is_help=True)


@app.command("init")
@command("config", json_output=False)
def init(
    force: Annotated[bool, typer.Option("--force", help="Replace an existing key file (data under it "
                                        "becomes unreadable).")] = False,
    *,
    opts: Opts,
) -> None:
    """Create a new key file (mode 0600) at FACEID_JOBS_KEY_FILE or ~/.config/faceid-jobs/key.json.

    Example: [bold]FACEID_JOBS_KEY_FILE=/secure/faceid.json faceid-jobs keys init[/bold]
    """
    from faceid_jobs.crypto.keyadmin import init_key

    kek, path = init_key(opts.settings(), force=force)
    out.print(f"created key {kek.key_id} at {path} (mode 0600): back it up somewhere safe")


@app.command("show")
@command("config")
def show(*, opts: Opts) -> None:
    """Which key is configured (its id and source, never the key itself).

    Example: [bold]faceid-jobs keys show --json[/bold]
    """
    from faceid_jobs.workspace import load_keyring

    settings = opts.settings()
    keyring, _ = load_keyring(settings)
    source = ("kms" if settings.kms_key_id else "env" if keyring.primary.key_id.startswith("local")
              and _env_key() else "file")
    info = {"key_id": keyring.primary.key_id, "source": source}
    if source == "file":
        info["file"] = str(settings.resolved_key_file())
    if opts.json_out:
        print_json(info)
    else:
        out.print(" ".join(f"{k}={v}" for k, v in info.items()))


def _env_key() -> bool:
    import os

    from faceid_jobs.workspace import KEY_ENV

    return bool(os.environ.get(KEY_ENV))


@app.command("rotate")
@command(*STORE)
def rotate(
    to_kms: Annotated[str | None, typer.Option("--to-kms", help="Move to this AWS KMS key id/ARN "
                                               "instead of a new key file.", show_default=False)] = None,
    reencrypt: Annotated[bool, typer.Option("--reencrypt", help="Also rewrite every record, label, gallery, "
                                            "people and index object under new data keys and delete the old "
                                            "ones (writers refuse meanwhile).")] = False,
    *,
    opts: Opts,
) -> None:
    """Re-wrap every data key under a new key and publish a new index version.

    Without --reencrypt nothing is re-encrypted: the data keys stay the same, so the
    old key plus an old copy of the store's keys/data still decrypts current data.
    --reencrypt replaces the data keys themselves. The old key file is kept as
    key.json.retired-<id>; destroy it once searches work. Safe to run again if interrupted.

    Examples: [bold]faceid-jobs keys rotate[/bold], [bold]faceid-jobs keys rotate --reencrypt[/bold],
    [bold]faceid-jobs keys rotate --to-kms alias/faceid[/bold]
    """
    from dataclasses import asdict

    from faceid_jobs.crypto.keyadmin import rotate_key
    from faceid_jobs.storage import open_store

    settings = opts.settings()
    if reencrypt:
        result = _rotate_reencrypting(settings, to_kms, opts)
    else:
        with working("re-wrapping data keys…"):
            result = rotate_key(settings, open_store(settings.store), to_kms=to_kms)
    if opts.json_out:
        print_json(asdict(result))
        return
    if reencrypt:
        kinds = ", ".join(f"{n} {kind}" for kind, n in (result.reencrypted or {}).items() if n)
        out.print(f"rotated {result.old_key_id} -> {result.new_key_id} and re-encrypted "
                  f"{sum((result.reencrypted or {}).values())} objects ({kinds or 'none left'}); "
                  f"{result.old_keys_deleted} old data keys deleted, {result.audit_keys_kept} audit key kept "
                  f"(re-wrapped); index version {result.index_version} "
                  f"({result.index_versions_collected} older collected); {result.seconds:.1f} s", highlight=False)
    else:
        out.print(f"rotated {result.old_key_id} -> {result.new_key_id}: {result.rewrapped} data keys "
                  f"re-wrapped ({result.already} already were); index version {result.index_version}")
    if result.retired_file:
        out.print(f"old key kept at {result.retired_file}: destroy it once searches work")
    if to_kms:
        out.print(f"set FACEID_JOBS_KMS_KEY_ID={to_kms} from now on")


def _rotate_reencrypting(settings, to_kms: str | None, opts: Opts):
    """`rotate_key(reencrypt=True)` with a progress bar per kind of object on stderr."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from faceid_jobs.crypto.keyadmin import rotate_key
    from faceid_jobs.storage import open_store

    progress = Progress(TextColumn("[bold]re-encrypting {task.description}"), BarColumn(), MofNCompleteColumn(),
                        TimeElapsedColumn(), console=err, disable=not show_progress(opts), transient=True)
    tasks: dict[str, object] = {}

    def tell(kind: str, done: int, total: int) -> None:
        if kind not in tasks:
            tasks[kind] = progress.add_task(kind, total=total)
        progress.update(tasks[kind], completed=done, total=total)  # type: ignore[arg-type]

    with progress:
        return rotate_key(settings, open_store(settings.store), to_kms=to_kms, reencrypt=True, progress=tell)


@app.command("status")
@command(*STORE)
def status(*, opts: Opts) -> None:
    """The configured key, a key rotation in progress, and how many data keys each key wraps.

    Example: [bold]faceid-jobs keys status --json[/bold]
    """
    from faceid_jobs.crypto.keyadmin import key_status
    from faceid_jobs.crypto.lease import RotationLease
    from faceid_jobs.storage import open_store

    settings = opts.settings()
    info = key_status(settings, open_store(settings.store))
    if opts.json_out:
        print_json(info)
        return
    # Key ids come from the store (keys/data, journal/rotation.json): anyone who can write it chose them.
    out.print(f"key_id={shown(info['key_id'])}", highlight=False)
    if info["rotation"]:
        out.print(shown(RotationLease(**info["rotation"]).describe()), highlight=False)
    for kek, count in sorted(info["data_keys"].items()):
        out.print(f"{shown(count)} data keys wrapped by {shown(kek)}", highlight=False)
