"""digest: personal, ranked research-paper newsletters from daily digests and feeds."""

__version__ = "0.1.0"
