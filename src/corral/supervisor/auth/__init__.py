"""API keys, users, sessions and the access policy that guards every route."""
