"""OpenAI's Responses API (``/v1/responses``), stateless: a translator over Corral's chat
request, and a renderer of the chat response and chunk stream as a response and its events."""
