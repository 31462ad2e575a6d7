"""The dashboard's API helpers."""
