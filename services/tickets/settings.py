from shared.settings import CommonSettings


class TicketsSettings(CommonSettings):
    ops_port: int = 9104
