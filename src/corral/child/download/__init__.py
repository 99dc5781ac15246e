"""The download child: one hub download job with huggingface-hub."""
