"""Storage: the Store interface, its key layout and the video catalog."""

from faceid_jobs.storage.base import Store, check_key, open_store
from faceid_jobs.storage.catalog import VideoEntry, list_entries, load_entry, save_entry
from faceid_jobs.storage.local import LocalStore

__all__ = [
    "LocalStore",
    "Store",
    "VideoEntry",
    "check_key",
    "list_entries",
    "load_entry",
    "open_store",
    "save_entry",
]
