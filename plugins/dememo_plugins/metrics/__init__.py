"""First-party metrics (one module each)."""
