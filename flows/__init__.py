"""Prefect flows over the faceid_jobs pipeline (installed as `faceid_jobs.flows`)."""
