"""Training losses."""

from raytune_chat.modules.loss._chunked_cross_entropy import CEWithChunkedOutputLoss

__all__ = ["CEWithChunkedOutputLoss"]
