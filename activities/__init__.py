"""Temporal activities: the HTTP call of each step, and loading definitions by name."""
