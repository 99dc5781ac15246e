"""Deployment: `corral install-service`, and the systemd unit and Caddyfiles as package data."""
