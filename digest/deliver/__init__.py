"""Delivery: write, send and record each rendered digest exactly once."""
