"""The local content store: sealed records per user in a database file, their keys, and
deletion by destroying a user's key. Files and cryptography only: the store sink feeds it.
"""
