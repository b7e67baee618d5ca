"""Measurement programs and their helpers (not installed with the package)."""
