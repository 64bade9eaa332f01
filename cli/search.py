"""`faceid-jobs search PHOTO`: where and when does this person appear?

Imports only what a search needs (no Prefect, no video decoding), so it
starts fast.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from faceid_jobs.cli.common import (
    ConfigOpt,
    DeviceOpt,
    JsonOpt,
    StoreOpt,
    WeightsOpt,
    exits_on_user_error,
    fmt_time,
    out,
    print_json,
    settings_from,
)
from rich.table import Table


@exits_on_user_error
def search(
    photo: Annotated[Path, typer.Argument(help="Photo of the person to look for.", show_default=False)],
    top_k: Annotated[int | None, typer.Option("--top-k", "-k", help="Most hits to return [default: 20].",
                                              show_default=False, min=1)] = None,
    threshold: Annotated[float | None, typer.Option(
        "--threshold", "-t", help="Lowest cosine similarity to report [default: 0.4].",
        show_default=False)] = None,
    face_index: Annotated[int | None, typer.Option(
        "--face-index", help="Which face of the photo to use, 0 = largest [default: largest].",
        show_default=False, min=0)] = None,
    json_out: JsonOpt = False,
    store: StoreOpt = None,
    weights_dir: WeightsOpt = None,
    device: DeviceOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Search the index for the face in PHOTO and list where it appears.

    Example: [bold]faceid-jobs search ross.jpg --top-k 10 --json[/bold]
    """
    from faceid_jobs.images import read_photo
    from faceid_jobs.index import load_index
    from faceid_jobs.models import load_models
    from faceid_jobs.search import make_query, search_index
    from faceid_jobs.storage import open_store

    settings = settings_from(config, store=store, weights_dir=weights_dir, device=device,
                             top_k=top_k, threshold=threshold)
    target = open_store(settings.store)
    image = read_photo(photo)
    models = load_models(settings, liveness=False)
    query = make_query(image, str(photo), models, face_index)
    result = search_index(query, load_index(target), top_k=settings.top_k,
                          threshold=settings.threshold)
    if json_out:
        print_json(result.to_json())
        return
    q = result.query
    table = Table(title=f"{photo.name}: face {q.face_index} of {q.faces_in_photo} "
                        f"(det {q.det_score:.2f}) — {len(result.hits)} hits ≥ {settings.threshold} "
                        f"in {result.index.vectors} faces", title_justify="left")
    for name, justify in (("#", "right"), ("similarity", "right"), ("video", "left"),
                          ("time", "right"), ("frame", "right"), ("bbox", "left")):
        table.add_column(name, justify=justify)
    for rank, hit in enumerate(result.hits, 1):
        table.add_row(str(rank), f"{hit.similarity:.3f}", Path(hit.video).name, fmt_time(hit.timestamp_s),
                      str(hit.frame), " ".join(f"{v:.0f}" for v in hit.bbox))
    out.print(table)
