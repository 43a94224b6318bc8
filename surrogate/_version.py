"""The package version (part of every result key: a new version scores anew)."""

__version__ = "0.2.0"
