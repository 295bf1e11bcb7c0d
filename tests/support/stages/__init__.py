"""Stages registered by tests only (see tests/integration/test_stage_registry.py)."""
