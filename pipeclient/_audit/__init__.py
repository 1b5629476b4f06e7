"""The local audit log: append-only, metadata-only lines in a SHA-256 hash chain, and
its verifier. Storage and checks only: the audit sink feeds it.
"""
