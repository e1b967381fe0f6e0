"""Cronium: a self-hosted automation platform in one Python process."""

__version__ = "0.1.0"
