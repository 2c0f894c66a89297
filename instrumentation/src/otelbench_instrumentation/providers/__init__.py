"""Provider instrumentations."""
