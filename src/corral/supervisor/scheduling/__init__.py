"""The pure scheduler: which children run, load on demand, evict idle, memory budget."""
