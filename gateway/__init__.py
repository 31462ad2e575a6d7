"""The FastAPI gateway: registry, execution and health endpoints under /api."""
