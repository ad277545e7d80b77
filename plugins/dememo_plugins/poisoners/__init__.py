"""First-party poisoners (one module each)."""
