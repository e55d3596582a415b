"""Parley: a self-hosted agent dialogue server speaking existing wire protocols."""

__version__ = "0.1.0"
