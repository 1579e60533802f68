"""GET /metrics: this process's instruments (app.instruments) and the cluster as the database
holds it, read at scrape time (see docs/metrics.md)."""
