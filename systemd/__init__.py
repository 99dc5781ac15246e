"""Deployment files shipped with Corral (installed as corral.deploy for `corral install-service`)."""
