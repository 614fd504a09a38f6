"""pitchside: streaming video analytics for football."""

__version__ = "0.1.0"
