"""The `faceid-jobs` command line (installed as `faceid_jobs.cli`): thin wrappers over the library."""
