"""Request analytics in SQLite, GeoIP, user agents, Prometheus metrics."""
