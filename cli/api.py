"""`faceid-jobs api`: serve search and liveness over HTTP (FastAPI + uvicorn)."""

from __future__ import annotations

import ipaddress
from typing import Annotated, Any

import typer

from faceid_jobs.cli.common import SETTINGS, Opts, command, note, working
from faceid_jobs.errors import ConfigError

# Bearer tokens shorter than this are refused on a non-loopback address.
MIN_TOKEN_CHARS = 32


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _gallery_events(store: str) -> Any:
    """The callback that announces gallery changes (Prefect event), or None without a Prefect server."""
    from faceid_jobs.flows.events import GalleryEvents, prefect_api_configured

    return GalleryEvents(store) if prefect_api_configured() else None


@command(*SETTINGS, json_output=False)
def api(
    host: Annotated[str, typer.Option("--host", help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", "-p", help="Port to listen on.", min=1, max=65535)] = 8080,
    no_auth: Annotated[bool, typer.Option(
        "--no-auth", help="Serve without a token (refused unless --host is a loopback address).",
        rich_help_panel="Security")] = False,
    *,
    opts: Opts,
) -> None:
    """Serve search, liveness, verify and enroll over HTTP, with OpenAPI docs at /docs.

    Clients send [bold]Authorization: Bearer $FACEID_JOBS_API_TOKEN[/bold]; without a token
    the server does not start (unless [bold]--no-auth[/bold] on localhost). Models and the
    index are loaded once; a newer index version is picked up by itself.

    Examples:

      [bold]FACEID_JOBS_API_TOKEN=$(openssl rand -hex 24) faceid-jobs api --port 8080[/bold]

      [bold]curl -H "Authorization: Bearer $FACEID_JOBS_API_TOKEN" -F photo=@ross.jpg
      'http://127.0.0.1:8080/search?top_k=5'[/bold]
    """
    import uvicorn

    from faceid_jobs.web.api import create_app

    if no_auth and not _is_loopback(host):
        raise ConfigError(f"--no-auth serves face search to anyone who can reach {host}: "
                          "only allowed on a loopback address (127.0.0.1, ::1, localhost)")
    settings = opts.settings()
    if not no_auth and not settings.api_token:
        raise ConfigError("no API token: set FACEID_JOBS_API_TOKEN (or pass --no-auth on localhost)")
    if not no_auth and not _is_loopback(host):
        for var, value in (("FACEID_JOBS_API_TOKEN", settings.api_token),
                           ("FACEID_JOBS_API_ENROLL_TOKEN", settings.api_enroll_token)):
            if value and len(value) < MIN_TOKEN_CHARS:
                raise ConfigError(f"{var} is shorter than {MIN_TOKEN_CHARS} characters: too easy to guess on "
                                  f"{host} (use e.g. `openssl rand -hex 24`)")
    with working("loading models and index…"):
        app = create_app(settings, auth=not no_auth, on_change=_gallery_events(settings.store))
    shown = f"[{host}]" if ":" in host else host
    note(f"faceid-jobs api on http://{shown}:{port} (docs /docs, auth {'OFF' if no_auth else 'bearer token'}, "
         f"index version {app.state.index.version or 'none yet'})")
    uvicorn.run(app, host=host, port=port, log_level="info" if opts.verbose else "error" if opts.quiet else "warning",
                access_log=opts.verbose > 0, server_header=False)
