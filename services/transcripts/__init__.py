"""Transcripts: durable chat history built from the chat event stream."""
