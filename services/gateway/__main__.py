"""Start the gateway: `python -m services.gateway`."""

from services.gateway.app import create_app
from services.gateway.settings import GatewaySettings, signing_secret
from shared import telemetry
from shared.runtime import serve

if __name__ == "__main__":
    settings = GatewaySettings()
    signing_secret(settings)  # refuses to start without a real secret
    telemetry.setup("gateway", settings.log_level, settings.log_json, settings.tracing())
    serve(create_app(settings), settings.host, settings.port, settings.trusted_proxies)
