"""Running refdesk on one machine: embedded servers, the five services, demo data."""
