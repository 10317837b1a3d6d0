"""News monitoring: feeds in, deduplicated stories tagged and scored, alerts out."""

__version__ = "0.1.0"
