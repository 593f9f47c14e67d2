"""chunkd: resumable uploads of large files, handed to processing exactly once."""

__version__ = "0.1.0"
