"""First-party datasets (one module each)."""
