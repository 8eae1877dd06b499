"""Command-line tools for whoever runs refdesk (the services are under services/)."""
