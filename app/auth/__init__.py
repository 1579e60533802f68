"""API tokens and roles: a domain of its own, with a table and admin commands."""
