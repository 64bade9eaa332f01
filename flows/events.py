"""The `faceid.enrollment.changed` Prefect event, emitted after each gallery change.

The deployments ``rebuild-index/on-enrollment`` and ``relabel/on-enrollment``
are triggered by it (`faceid_jobs.flows.deploy`). Events only matter on a
Prefect server, so the event is emitted only when one is configured:
`PREFECT_API_URL` in the environment, or in the active profile of Prefect's
profiles file (read as TOML, without importing Prefect). Otherwise nothing is
imported or sent and enrollment costs nothing extra. When one is configured
but does not accept a connection within a second, a warning says so and
nothing is sent (Prefect's events worker would otherwise retry for seconds
at exit). Sending runs in Prefect's background events worker; a failure is
logged as a warning and never fails the enrollment.

The event carries no names and no biometric data: the store, the gallery
version, the action and how many identities changed.

`GalleryEvents` is the callback the edges (CLI, `faceid-jobs api`) pass to
the library's gallery changes as ``on_change``: the library never imports
Prefect, the edge decides whether changes are announced.
"""

from __future__ import annotations

import logging
import os
import socket
import tomllib
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from faceid_jobs.flows.deploy import ENROLLMENT_EVENT

__all__ = ["ENROLLMENT_EVENT", "GalleryEvents", "emit_enrollment_changed", "prefect_api_configured",
           "prefect_api_url"]

log = logging.getLogger(__name__)


def _profile_api_url(environ: dict[str, str] | os._Environ[str]) -> str | None:
    """PREFECT_API_URL of the active profile in Prefect's profiles file, if any."""
    home = Path(environ.get("PREFECT_HOME") or "~/.prefect").expanduser()
    path = Path(environ.get("PREFECT_PROFILES_PATH") or home / "profiles.toml").expanduser()
    try:
        data = tomllib.loads(path.read_text())
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
        return None
    active = environ.get("PREFECT_PROFILE") or data.get("active") or "ephemeral"
    profile = (data.get("profiles") or {}).get(active) or {}
    url = profile.get("PREFECT_API_URL")
    return str(url) if url else None


def prefect_api_url(environ: dict[str, str] | None = None) -> str | None:
    """The configured Prefect API URL (env var, else the active profile), or None."""
    env = os.environ if environ is None else environ
    return env.get("PREFECT_API_URL") or _profile_api_url(env)


def prefect_api_configured(environ: dict[str, str] | None = None) -> bool:
    """True when a Prefect server is configured (env var or active profile)."""
    return bool(prefect_api_url(environ))


def _reachable(url: str, timeout: float = 1.0) -> bool:
    parts = urlsplit(url)
    port = parts.port or (443 if parts.scheme in ("https", "wss") else 80)
    try:
        with socket.create_connection((parts.hostname or "localhost", port), timeout=timeout):
            return True
    except (OSError, ValueError):
        return False


def emit_enrollment_changed(store: str, gallery_version: int, action: str, identities: int) -> bool:
    """Emit the event when a Prefect server is configured; True when it was handed to Prefect."""
    url = prefect_api_url()
    if not url:
        log.debug("no PREFECT_API_URL: %s not emitted", ENROLLMENT_EVENT)
        return False
    if not _reachable(url):
        log.warning("Prefect server at %s does not answer: %s not emitted; run `faceid-jobs relabel` and "
                    "`faceid-jobs index build` by hand", url, ENROLLMENT_EVENT)
        return False
    try:
        from prefect.events import emit_event

        event = emit_event(
            event=ENROLLMENT_EVENT,
            resource={"prefect.resource.id": "faceid.gallery", "faceid.store": store},
            payload={"gallery_version": gallery_version, "action": action, "identities": identities},
        )
    except Exception as exc:  # an event must never fail the enrollment itself
        log.warning("could not emit %s (%s: %s); run `faceid-jobs relabel` and `faceid-jobs index build` "
                    "by hand", ENROLLMENT_EVENT, type(exc).__name__, exc)
        return False
    return event is not None



class GalleryEvents:
    """``on_change`` callback for `faceid_jobs.identity.gallery`: emits the event for each change.

    Attributes:
        emitted: True once an event was handed to Prefect (the CLI reports it).
    """

    def __init__(self, store: str) -> None:
        self.store = store
        self.emitted = False

    def __call__(self, change: Any) -> None:
        """Emit `faceid.enrollment.changed` for a `GalleryChange`."""
        sent = emit_enrollment_changed(self.store, change.version, change.action, len(change.names))
        self.emitted = self.emitted or sent
