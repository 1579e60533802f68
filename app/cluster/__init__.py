"""Replicas: which one leads, how the others reach it, and what they share through the database."""
