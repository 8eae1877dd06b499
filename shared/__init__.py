"""Contracts and common code that every refdesk service shares."""
