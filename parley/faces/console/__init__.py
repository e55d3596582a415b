"""The operator's side: the admin HTTP API."""
