"""Helpers for the tests: real local servers on 127.0.0.1 and the tools they need."""
