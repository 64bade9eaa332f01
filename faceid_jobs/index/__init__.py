"""Vector indexes over the stored face records."""

from faceid_jobs.index.flat import FaceIndex, IndexInfo, build_index, load_index

__all__ = ["FaceIndex", "IndexInfo", "build_index", "load_index"]
