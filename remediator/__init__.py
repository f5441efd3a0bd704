"""remediator: Prometheus Alertmanager alerts in, safe and audited Kubernetes remediation out."""

__version__ = "0.1.0"
