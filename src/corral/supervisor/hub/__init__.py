"""Pulling models from a Hugging Face style hub: the cache, download plans, download jobs."""
