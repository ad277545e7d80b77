"""First-party attacks (one module each)."""
