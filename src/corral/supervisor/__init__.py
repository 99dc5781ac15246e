"""The Corral supervisor: HTTP API, router, scheduler and child processes."""
