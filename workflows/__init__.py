"""Temporal workflow code. Deterministic: no I/O, no clock, no database."""
