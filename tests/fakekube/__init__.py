"""A fake Kubernetes API server for tests: real HTTP, the official client works unchanged.

Start it with :class:`tests.fakekube.server.FakeKube` (in-process) or ``python -m
tests.fakekube`` (standalone); GAPS.md lists what it does not simulate.
"""
