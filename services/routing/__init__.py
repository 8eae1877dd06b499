"""Routing: owner of every chat's lifecycle (queueing, claims, messages, closing)."""
