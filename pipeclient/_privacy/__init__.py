"""Content transforms: the `[privacy]` detectors and the walk over message structure.

Pure text in, text out; no record, sink or configuration loading here.
"""
