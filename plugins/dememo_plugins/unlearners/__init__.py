"""First-party unlearners (one module each)."""
