"""Scenario files: starting wallets and fault injection (the format of SCENARIOS.md)."""
