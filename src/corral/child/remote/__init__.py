"""The remote child: a model served by an OpenAI-compatible engine elsewhere (vLLM,
llama-server, Ollama, another Corral), behind the same protocol as the engines that run here.

Generate and embed frames become streaming HTTP calls to one of the upstream's replicas;
the upstream's SSE chunks come back as delta frames."""
