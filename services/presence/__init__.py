"""Presence: operator sessions, status, monitored queues and queue staffing."""
