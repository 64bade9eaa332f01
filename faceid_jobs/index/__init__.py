"""Versioned, encrypted, sharded vector indexes over the stored face records."""

from faceid_jobs.index.manifest import Manifest, list_versions, load_manifest
from faceid_jobs.index.merge import MergeResult, all_rows, merge_index
from faceid_jobs.index.shard import IndexParams, ShardRef
from faceid_jobs.index.sharded import IndexInfo, ShardedIndex, open_index

__all__ = [
    "IndexInfo",
    "IndexParams",
    "Manifest",
    "MergeResult",
    "ShardRef",
    "ShardedIndex",
    "all_rows",
    "index_params",
    "list_versions",
    "load_manifest",
    "merge_index",
    "open_index",
]


def index_params(settings) -> IndexParams:
    """Shard parameters from `Settings`."""
    return IndexParams(exact_max=settings.exact_max, ivf_codec=settings.ivf_codec,
                       nprobe=settings.nprobe, shard_max=settings.shard_max)
