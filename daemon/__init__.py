"""chime: an always-on personal reminder daemon for small edge boards."""

__version__ = "0.1.0"
