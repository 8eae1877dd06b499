"""Versioned, typed payloads: every message that crosses a service or client boundary."""
