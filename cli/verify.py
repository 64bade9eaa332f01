"""`faceid-jobs verify PHOTO --identity NAME`: is this the enrolled person (1:1, with liveness)?"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from faceid_jobs.cli.common import (
    SETTINGS,
    Opts,
    command,
    complete_identity,
    out,
    photo_arg,
    photo_label,
    print_json,
    read_photo_arg,
    shown,
    warn,
)
from faceid_jobs.cli.enroll import NoLivenessOpt
from faceid_jobs.errors import ConfigError, ExitCode

PhotoArg = photo_arg("check")


@command(*SETTINGS)
def verify(
    photo: PhotoArg,
    identity: Annotated[str, typer.Option("--identity", "-i", help="The enrolled identity to check against.",
                                          show_default=False, autocompletion=complete_identity)],
    threshold: Annotated[float | None, typer.Option(
        "--threshold", "-t", help="Lowest cosine similarity for a match. \\[default: identity_threshold, 0.4]",
        show_default=False, min=0.0, max=1.0)] = None,
    no_liveness_check: NoLivenessOpt = False,
    *,
    opts: Opts,
) -> None:
    """Check the largest face in PHOTO against one enrolled identity, with a liveness check.

    Exit codes: 0 match, 1 no match, 3 the face does not look live (spoof), 2 bad input (no face,
    unreadable photo, unknown identity).

    Example: [bold]faceid-jobs verify visitor.jpg --identity Ross --json[/bold]
    """
    from faceid_jobs.identity.gallery import load_gallery
    from faceid_jobs.identity.matching import verify_face
    from faceid_jobs.models import load_models
    from faceid_jobs.photo import check_live, face_of
    from faceid_jobs.workspace import open_workspace

    settings = opts.settings(identity_threshold=threshold)
    image = read_photo_arg(photo, settings.max_image_pixels)
    enrolled = load_gallery(open_workspace(settings), names=[identity]).get(identity)
    models = load_models(settings, liveness=not no_liveness_check)
    if enrolled.ref.embedder_id != models.ids["embedder"]:
        raise ConfigError(f"{identity}: enrolled with embedder {enrolled.ref.embedder_id}, but the configured one "
                          f"is {models.ids['embedder']}; enrol again")
    face, embedding = face_of(image, photo_label(photo), models)
    if face.faces_in_photo > 1:
        warn(f"{photo_label(photo)}: holds {face.faces_in_photo} faces; checked the largest")
    if not no_liveness_check:
        check_live(face, settings.live_threshold)
    result = verify_face(face, embedding, identity, enrolled.embeddings, settings.identity_threshold)
    if opts.json_out:
        print_json(result.to_json())
    else:
        verdict = "[green]match[/green]" if result.match else "[red]no match[/red]"
        live = "not checked" if face.liveness is None else f"{face.liveness:.2f}"
        out.print(f"{verdict}: {shown(Path(photo_label(photo)).name)} vs {shown(identity)}: "
                  f"similarity {result.similarity:.3f} "
                  f"(threshold {result.threshold:g}), liveness {live}", highlight=False)
    if not result.match:
        raise typer.Exit(int(ExitCode.FAILURES))
