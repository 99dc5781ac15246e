"""The process: the aiohttp server, sd_notify, logging, version."""
