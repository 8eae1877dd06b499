from shared.settings import CommonSettings


class TranscriptsSettings(CommonSettings):
    ops_port: int = 9103
    fetch_batch: int = 500
    fetch_linger_s: float = 0.2
    # How often the retention job looks for chats past their library's retention.
    retention_every_s: float = 3600.0
