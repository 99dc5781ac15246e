"""Models: the catalog, GGUF headers, the demo model, the manager actor, the shelf, admin routes."""
