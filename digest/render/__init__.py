"""Rendering: typed digests in, text or bytes out.

Every renderer here is pure: it takes `digest.records` values (and URLs already
built by `Links`), returns a string or bytes, and never opens the database or a
network connection. Anything from an item is untrusted and escaped for the format
being written.
"""
