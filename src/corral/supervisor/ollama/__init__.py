"""Ollama's API (``/api/chat``, ``/api/generate``, ``/api/tags``...) as a translator over
Corral's OpenAI request models and chunk stream: no generation logic of its own."""
