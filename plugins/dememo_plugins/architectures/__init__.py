"""First-party architectures (one module each)."""
