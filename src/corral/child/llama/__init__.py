"""The llama child: llama-cpp-python on one GGUF model."""
