"""Stored conversations, owned by a stable principal id."""
