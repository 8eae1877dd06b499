"""Gateway: the HTTP and WebSocket edge for widgets, operators and the REST API."""
