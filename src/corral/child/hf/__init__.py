"""The transformers backend: one Hugging Face checkpoint for chat, embeddings or rerank."""
