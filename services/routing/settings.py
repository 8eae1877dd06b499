from shared.settings import CommonSettings


class RoutingSettings(CommonSettings):
    ops_port: int = 9101
    cas_attempts: int = 16
    # How long a transfer offer stays open and how long a disconnected owner keeps their
    # chats (how long a patron's chat waits for them: CommonSettings.patron_grace_s).
    offer_timeout_s: float = 120.0
    owner_grace_s: float = 60.0
    # A safety net: widget availability is re-evaluated on every presence, configuration
    # and window-edge change, and at least this often.
    widget_tick_s: float = 1.0
    # Every widget's status is announced again this often, for gateways that started late.
    widget_republish_s: float = 30.0
