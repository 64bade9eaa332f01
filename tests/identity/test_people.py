"""People discovery from stored embeddings: clustering, ids stable across runs, edits kept across rebuilds,
forget removes the faces, the store holds nothing readable (synthetic store, no models)."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from faceid_jobs.errors import UnknownPersonError
from faceid_jobs.identity.clustering import ClusterParams, chinese_whispers, cluster, components, renumber, track_nodes
from faceid_jobs.identity.discover import discover_with
from faceid_jobs.identity.forget import forget_identity, forget_video
from faceid_jobs.identity.gallery import enroll
from faceid_jobs.identity.people import list_people_versions, load_state, update_state
from faceid_jobs.identity.people_edit import ignore_person, merge_people, people_view, person_view
from tests.synthetic_store import EMBEDDER, add_video, faces_of, people, photo

P = ClusterParams(threshold=0.5)


def test_chinese_whispers_keeps_two_groups_apart_where_components_chain_them():
    # Two triangles joined by one weak edge 2-3: components merge them, Chinese whispers does not.
    src = np.array([0, 0, 1, 3, 3, 4, 2])
    dst = np.array([1, 2, 2, 4, 5, 5, 3])
    w = np.array([0.9, 0.9, 0.9, 0.9, 0.9, 0.9, 0.5])
    assert renumber(chinese_whispers(6, src, dst, w)).tolist() == [0, 0, 0, 1, 1, 1]
    assert len(set(components(6, src, dst).tolist())) == 1


def test_pinned_nodes_keep_their_class_and_new_ones_join():
    cls = chinese_whispers(4, np.array([0, 1, 3]), np.array([2, 3, 2]), np.array([0.9, 0.9, 0.4]),
                           labels=np.array([7, 9, -1, -2]), pinned=np.array([True, True, False, False]))
    assert cls.tolist() == [7, 9, 7, 9]


def test_track_summary_leaves_out_a_stray_face():
    rng = np.random.default_rng(0)
    p = people(("a", "b"), seed=1)
    faces = np.concatenate([faces_of(p["a"], 6, rng), p["b"][None]])
    keys, summary = track_nodes(faces, np.zeros(7, np.int64))
    assert keys.tolist() == [0] and float(summary[0] @ p["a"]) > 0.95


def test_cluster_is_deterministic_and_separates_synthetic_people():
    rng = np.random.default_rng(1)
    p = people(tuple("abcdefgh"), seed=2, dim=64)
    truth = np.repeat(np.arange(8), 12)
    vectors = np.concatenate([faces_of(p[n], 12, rng, noise=0.06) for n in "abcdefgh"])
    a, b = cluster(vectors, P), cluster(vectors, P)
    assert a.tolist() == b.tolist() and a.tolist() == renumber(truth).tolist()


@pytest.fixture()
def archive(make_workspace):
    rng = np.random.default_rng(0)
    p = people(("Ross", "Rachel", "Joey", "Poster"), seed=3)
    ws = make_workspace()
    add_video(ws, "v1", [
        [(v, 1) for v in faces_of(p["Ross"], 5, rng)] + [(v, 2) for v in faces_of(p["Rachel"], 3, rng)],
        [(v, 3) for v in faces_of(p["Joey"], 4, rng)] + [(v, 4) for v in faces_of(p["Ross"], 2, rng)]])
    return ws, p, rng


def _ids(ws, min_faces=0):
    return {x["id"]: x for x in people_view(ws, min_faces=min_faces)["people"]}


def test_discovery_is_incremental_and_ids_are_stable(archive):
    ws, p, rng = archive
    first = discover_with(ws, EMBEDDER, P)
    assert first.published and first.people == 3 and first.faces == 14
    before = _ids(ws)
    ross = next(i for i, x in before.items() if x["faces"] == 7)
    assert before[ross]["tracks"] == 2 and before[ross]["videos"] == 1
    assert discover_with(ws, EMBEDDER, P).published is False  # nothing new: nothing published
    add_video(ws, "v2", [[(v, 7) for v in faces_of(p["Ross"], 3, rng)]
                         + [(v, 8) for v in faces_of(p["Poster"], 4, rng)]])
    second = discover_with(ws, EMBEDDER, P)
    assert second.new_files == 1 and second.new_nodes == 2 and second.people == 4
    after = _ids(ws)
    assert after[ross]["faces"] == 10 and after[ross]["videos"] == 2
    assert set(before) < set(after)
    assert after[ross]["first_seen"]["video"] == "/videos/v1.mp4"
    assert after[ross]["last_seen"]["video"] == "/videos/v2.mp4"
    # Rebuild: same people, same ids; every stored face belongs to someone.
    rebuilt = discover_with(ws, EMBEDDER, P, rebuild=True)
    assert rebuilt.rebuild and {i: x["faces"] for i, x in _ids(ws).items()} == {i: x["faces"] for i, x in after.items()}
    assert sum(x["faces"] for x in _ids(ws).values()) == 21
    assert list_people_versions(ws.store) == [rebuilt.version]  # older versions deleted


def _two_runs(ws, params=P) -> dict:
    """Two videos discovered in one run, a third added incrementally; the people view after."""
    rng = np.random.default_rng(5)
    p = people(("Ross", "Rachel", "Joey", "Monica"), seed=6)
    # Fingerprints in the opposite order of the paths: first and last seen follow the paths.
    add_video(ws, "fp-1", [[(v, 1) for v in faces_of(p["Ross"], 4, rng)]
                           + [(v, 2) for v in faces_of(p["Joey"], 3, rng)]], uri="/videos/b.mp4")
    add_video(ws, "fp-2", [[(v, 1) for v in faces_of(p["Rachel"], 5, rng)]
                           + [(v, 2) for v in faces_of(p["Ross"], 3, rng)]], uri="/videos/a.mp4")
    discover_with(ws, EMBEDDER, params)
    add_video(ws, "fp-0", [[(v, 4) for v in faces_of(p["Ross"], 3, rng)] + [(v, 5) for v in faces_of(p["Joey"], 2, rng)]
                           + [(v, 6) for v in faces_of(p["Monica"], 3, rng)]], uri="/videos/0.mp4")
    discover_with(ws, EMBEDDER, params)
    view = people_view(ws, min_faces=0)
    del view["clustering"]["created_at"]
    return view


def test_two_fresh_stores_with_the_same_records_give_the_same_people(make_workspace):
    first, second = _two_runs(make_workspace()), _two_runs(make_workspace())
    assert first == second and [x["faces"] for x in first["people"]] == [10, 5, 5, 3]
    ross = first["people"][0]
    # The later run's video is seen last even though its path sorts first.
    assert [ross["first_seen"]["video"], ross["last_seen"]["video"]] == ["/videos/a.mp4", "/videos/0.mp4"]


def test_searching_the_known_people_as_lists_finds_what_exact_search_finds(make_workspace):
    # Above exact_max exemplars an incremental run probes the nearest people's exemplars only (nprobe people).
    exact, lists = _two_runs(make_workspace()), _two_runs(make_workspace(), replace(P, exact_max=2, nprobe=1))
    assert lists["people"] == exact["people"] and lists["clustering"]["exact_max"] == 2


def test_merge_and_ignore_survive_a_rebuild_and_unknown_ids_are_refused(archive):
    ws, _, _ = archive
    discover_with(ws, EMBEDDER, P)
    ids = sorted(_ids(ws))
    kept = merge_people(ws, [ids[2], ids[1]])
    assert kept == ids[1] and person_view(ws, ids[2])["id"] == ids[1]  # the merged id leads to the kept one
    ignore_person(ws, ids[0])
    discover_with(ws, EMBEDDER, P, rebuild=True)
    listed = _ids(ws)
    assert set(listed) == {ids[1]} and listed[ids[1]]["faces"] == 7
    assert load_state(ws).people[ids[0]].ignored
    with pytest.raises(UnknownPersonError, match="P999999: no such person"):
        person_view(ws, "P999999")


def test_forget_video_removes_its_faces_from_the_people(archive):
    ws, p, rng = archive
    add_video(ws, "v2", [[(v, 7) for v in faces_of(p["Joey"], 3, rng)]])
    discover_with(ws, EMBEDDER, P)
    assert sum(x["faces"] for x in _ids(ws).values()) == 17
    forget_video(ws, "v2")
    assert sum(x["faces"] for x in _ids(ws).values()) == 14
    assert discover_with(ws, EMBEDDER, P).published is False


def _name(ws, pid, name):
    """Name a person as `people name` does once its faces are enrolled (the synthetic faces carry no quality)."""
    enroll(ws, {name: [(photo(name), load_state(ws).vectors[0].astype(np.float32))]}, EMBEDDER)

    def set_name(state):
        state.people[pid].name = name

    update_state(ws, "name", set_name)


@pytest.mark.parametrize("purge", [False, True])
def test_forget_takes_the_name_off_the_person(archive, purge):
    ws, _, _ = archive
    discover_with(ws, EMBEDDER, P)
    ross = next(i for i, x in _ids(ws).items() if x["faces"] == 7)
    _name(ws, ross, "Ross")
    assert load_state(ws).by_name("Ross") == ross
    forget_identity(ws, "Ross", embedder_id=EMBEDDER, threshold=P.threshold, purge_appearances=purge)
    discover_with(ws, EMBEDDER, P)
    state = load_state(ws)  # the sealed version, read back with the key: nobody is named Ross any more
    assert state.by_name("Ross") is None and all(m.name is None for m in state.people.values())
    listed = _ids(ws)
    assert all(x["name"] is None for x in listed.values())
    # Without the purge the person keeps its faces (unnamed); with it the person is gone, name and all.
    assert (ross in listed) is not purge and (ross in state.people) is not purge


def test_a_named_person_without_faces_is_dropped(archive):
    ws, p, rng = archive
    add_video(ws, "v2", [[(v, 7) for v in faces_of(p["Poster"], 4, rng)]])
    discover_with(ws, EMBEDDER, P)
    poster = next(i for i, x in _ids(ws).items() if x["videos"] == 1 and x["first_seen"]["video"].endswith("v2.mp4"))
    _name(ws, poster, "Poster")
    forget_video(ws, "v2")
    discover_with(ws, EMBEDDER, P)
    state = load_state(ws)
    assert poster not in state.people and state.by_name("Poster") is None


def test_people_versions_are_sealed(archive):
    ws, _, _ = archive
    discover_with(ws, EMBEDDER, P)
    key = f"people/versions/{load_state(ws).version:020d}.bin"
    blob = ws.store.get(key)
    assert blob[:4] == b"FJSC" and b"P000001" not in blob and b"/videos/" not in blob
    from faceid_jobs.errors import IntegrityError

    ws.store.put(key, blob[:-3] + bytes(3))
    with pytest.raises(IntegrityError):
        load_state(ws)
