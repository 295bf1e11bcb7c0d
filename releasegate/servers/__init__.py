"""Servers the gate runs beside a service on loopback: the fault-injecting TCP proxy chaos experiments drive
(`faultproxy`) and the OSV-compatible advisory endpoint pip-audit queries (`osv_mirror`). Each also runs on its
own as `python -m releasegate.servers.<name>`."""
