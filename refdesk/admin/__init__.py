"""`refdesk-admin`: day one and day two of a deployment, for whoever runs refdesk.

    refdesk-admin bootstrap   the consortium's first admin, through the directory service
    refdesk-admin check       NATS, MongoDB and SMTP reachable; streams, buckets, indexes
    refdesk-admin rotate      a new token signing key, with the old one still honoured
    refdesk-admin backup      every refdesk collection to a directory or archive
    refdesk-admin restore     ... and back into an empty database

It reads the services' own settings (REFDESK_* environment variables, shared/settings.py
and each service's settings), so a Job started with the services' configuration needs
nothing more. NATS as a user allowed everything (the admin user of deploy/local/nats_auth.py
and deploy/k8s's `refdesk-nats`).
"""
