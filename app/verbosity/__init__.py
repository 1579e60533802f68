"""Log verbosity: clusterm's own, and that of the Kubernetes components on the cluster nodes."""
