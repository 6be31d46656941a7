"""Streaming purification with continuous batching (`StreamingPurifier`): engine, slot buffer, network wrapper."""

from ssni.purify.stream.engine import StreamingPurifier, StreamStats

__all__ = ["StreamingPurifier", "StreamStats"]
