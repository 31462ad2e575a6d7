"""Example HTTP services for the README walk-through and the tests."""
