"""Persistence: flows and versions, runs and steps, blobs, audit log, connections."""
