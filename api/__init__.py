"""Flowlink's HTTP service (FastAPI): REST API under /api."""
