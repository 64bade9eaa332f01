"""Named identities: the encrypted gallery, matching faces to it, label files,
forgetting a person or a video, and the audit trail of those changes."""
