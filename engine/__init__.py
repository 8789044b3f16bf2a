"""Flowlink's engine: flow model, validation, expressions, interpreter, persistence."""
