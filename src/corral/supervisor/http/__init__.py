"""HTTP plumbing: error rendering, CORS, client address, request log, SSE, the static web UI."""
