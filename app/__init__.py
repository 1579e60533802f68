"""clusterm: the daemon."""
