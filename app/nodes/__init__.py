"""The node inventory and its lifecycle."""
