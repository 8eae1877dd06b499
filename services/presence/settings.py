from shared.settings import CommonSettings


class PresenceSettings(CommonSettings):
    ops_port: int = 9102
    session_ttl_s: float = 30.0
