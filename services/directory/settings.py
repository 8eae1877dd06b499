from shared.settings import CommonSettings


class DirectorySettings(CommonSettings):
    ops_port: int = 9105
