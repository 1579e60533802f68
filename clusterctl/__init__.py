"""clusterctl: the command-line client of the clusterm daemon."""
