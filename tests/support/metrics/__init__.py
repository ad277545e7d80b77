"""Helpers shared by the metric tests (tests/plugins/metrics/), one module per group of methods."""
