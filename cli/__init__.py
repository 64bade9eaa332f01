"""The `faceid-jobs` command line (installed as `faceid_jobs.cli`): thin wrappers over the library."""

# First, so that its exit handler is registered before any library's (see the module).
from faceid_jobs.cli import quick_exit as quick_exit
