"""Resumable streams: per-conversation ring buffers, sessions, replay routes."""
