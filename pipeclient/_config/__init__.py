"""Configuration: the telemetry.toml models, the file and environment layers, placeholders,
the merged settings with their provenance, and the one DO_NOT_TRACK decision.
"""
