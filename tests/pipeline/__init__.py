"""End to end: serve, real Prometheus with the shipped rules, real Alertmanager, a webhook."""
