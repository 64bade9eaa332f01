"""What a person looks at: the HTTP API and the self-contained HTML report."""
