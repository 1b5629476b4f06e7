"""Telemetry destinations: each turns the views the privacy step made for it into its
destination's payloads, and sends them. Each imports its SDK only when it is used.
"""
