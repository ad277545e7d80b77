"""Helpers shared by the poisoner tests (tests/plugins/poisoners/), one module per group of methods."""
