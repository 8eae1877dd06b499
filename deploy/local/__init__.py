"""Running refdesk on one machine: embedded servers, the six services, demo data."""
