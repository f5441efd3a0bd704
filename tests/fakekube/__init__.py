"""A fake Kubernetes API server for tests (real HTTP; the official client works unchanged)."""
