"""Anthropic's Messages API (``/v1/messages``): a translator over Corral's chat request, and a
renderer of OpenAI's response and chunk stream as Anthropic's message and events."""
