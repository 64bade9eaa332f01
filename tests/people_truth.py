"""Who a stored face is, for people-discovery checks: the nearest Friends portrait when that is clear, and a
judge of the people found against those labels (used by tests/cli/test_people_friends_cli.py and
bench/people.py)."""

from __future__ import annotations

import numpy as np

from tests.friends import PEOPLE


def portrait_labels(vectors: np.ndarray, portraits: np.ndarray, names: list[str], floor: float = 0.25,
                    margin: float = 0.1) -> list[str | None]:
    """Each face's nearest portrait when its cosine is >= floor and beats the second by margin, else None
    (faces seen from behind or in hard profile resemble no portrait: nearest-portrait is noise for them)."""
    sims = vectors @ portraits.T
    top = np.sort(sims, axis=1)
    best = sims.argmax(1)
    ok = (top[:, -1] >= floor) & (top[:, -1] - top[:, -2] >= margin)
    return [names[b] if o else None for b, o in zip(best.tolist(), ok.tolist(), strict=True)]


def judge(person_of_face: np.ndarray, labels: list[str | None], frames: np.ndarray, min_faces: int = 3,
          purity: float = 0.9) -> dict:
    """People of >= min_faces faces against the portrait labels: each character's people, impure people."""
    persons, impure, owner = [], [], {}
    for c in np.unique(person_of_face):
        rows = np.flatnonzero(person_of_face == c)
        if len(rows) < min_faces:
            continue
        named = [labels[i] for i in rows if labels[i] is not None]
        counts = {m: named.count(m) for m in set(named)}
        top = max(counts, key=lambda m: (counts[m], m)) if counts else None
        share = counts[top] / len(named) if top else 1.0
        same_frame = len(rows) - len(set(frames[rows].tolist()))  # two faces of one person in one frame
        persons.append({"faces": len(rows), "labelled": len(named), "character": top, "share": round(share, 3),
                        "same_frame": same_frame})
        if share < purity or same_frame:
            impure.append(persons[-1])
        elif top:
            owner.setdefault(top, []).append(len(rows))
    return {"people": len(persons), "unlabelled_people": sum(p["character"] is None for p in persons),
            "characters_one_person": sorted(m for m in PEOPLE if len(owner.get(m, [])) == 1),
            "characters_split": sorted(m for m in PEOPLE if len(owner.get(m, [])) > 1),
            "impure": impure}


def pair_accuracy(pred, truth) -> float:
    """Over all pairs of labelled faces: the share where "same person id" agrees with "same person"."""
    pred, truth = np.asarray(pred), np.asarray(truth)
    same_pred = pred[:, None] == pred[None, :]
    same_truth = truth[:, None] == truth[None, :]
    upper = np.triu(np.ones((len(pred), len(pred)), bool), 1)
    return float((same_pred == same_truth)[upper].mean()) if len(pred) > 1 else 1.0
