"""Helpers shared by the unlearner tests (tests/plugins/unlearners/), one module per group of methods."""
