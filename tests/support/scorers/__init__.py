"""Helpers shared by the memorization-score tests (tests/plugins/scorers/), one module per group of methods."""
