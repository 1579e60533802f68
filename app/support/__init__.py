"""Support: the daemon's recent log and the support bundle, which gathers from every domain."""
