"""Shared utilities: the Service Integration client, its errors and its resilience policies."""
