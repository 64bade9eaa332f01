"""Searching the index with a photo: the query face, the top-k hits and the
appearances (hits grouped by track and joined across short gaps)."""
