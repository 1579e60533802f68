"""Real SSH test hosts on loopback and the simulated control plane they join (never shipped)."""
