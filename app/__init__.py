"""The web dashboard's package."""
