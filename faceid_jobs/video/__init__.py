"""Video sources: probing, chunk planning, sampled decoding and fingerprints."""

from faceid_jobs.video.chunks import Chunk, plan_chunks, sampled_frames, timestamp_s
from faceid_jobs.video.decode import iter_chunk_frames
from faceid_jobs.video.fingerprint import video_fingerprint
from faceid_jobs.video.probe import VideoInfo, local_path, probe_video, register_opener

__all__ = [
    "Chunk",
    "VideoInfo",
    "iter_chunk_frames",
    "local_path",
    "plan_chunks",
    "probe_video",
    "register_opener",
    "sampled_frames",
    "timestamp_s",
    "video_fingerprint",
]
