"""Remote models: presets that name an OpenAI-compatible engine elsewhere, the remote child's
command line, and the state their replicas' health gives them on the shelf."""
