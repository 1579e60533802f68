"""Drift watch: does the cluster still hold the nodes clusterm commissioned?

A node can join, register, and be deleted seconds or days later (a cloud node controller that does
not know its name, an operator's `kubectl delete node`); the kubelet never re-registers by itself
(see docs/contracts.md#vanishing-node). clusterm asks a master for its Node list every
`drift_interval_s`, marks each commissioned node as in the cluster or missing, records
`NodeMissing` / `NodeReturned` on the timeline, and, when `drift_remediate` is on, queues a
re-join (an `update` job) for a missing node.

With replicas, the leader alone checks (app.drift.watch); a check asked for on any replica is a
row the leader runs (app.drift.asking, app.drift.checks), and every replica reads the results.
"""
