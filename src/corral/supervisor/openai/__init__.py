"""The OpenAI-compatible API: request schemas, response formatting, routes."""
