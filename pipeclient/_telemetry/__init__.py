"""Telemetry's core: the records a call leaves, the one privacy step, the sink contract
and the dispatcher that carries views to sinks off the caller's thread.
"""
