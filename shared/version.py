"""refdesk's version: the one in pyproject.toml, as the installed distribution `refdesk`
says it. Services announce it (NATS micro, the OpenAPI document), the image is tagged with
it (deploy/Containerfile, deploy/k8s/render.py)."""

from importlib.metadata import version

DISTRIBUTION = "refdesk"
VERSION = version(DISTRIBUTION)
