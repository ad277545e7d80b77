"""Helpers shared by the attack tests (tests/plugins/attacks/), one module per group of methods."""
