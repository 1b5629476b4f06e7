"""The managed gateway's mandatory metadata stream: the allowlisted event, its sink and
the on-disk spool that keeps billing events until they are delivered.
"""
