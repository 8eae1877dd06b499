from shared.settings import CommonSettings


class RoutingSettings(CommonSettings):
    ops_port: int = 9101
    cas_attempts: int = 16
