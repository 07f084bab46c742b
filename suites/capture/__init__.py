"""Capture checks: the A1.capture step (the run's traffic, read back with tshark)."""
