"""Footage to stored face records: sources, plans, the per-chunk work (detect,
reuse, embed, quality, tracks) and the loop that runs chunks."""
