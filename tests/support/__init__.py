"""Test helpers shared by the suites (loopback servers and the like)."""
