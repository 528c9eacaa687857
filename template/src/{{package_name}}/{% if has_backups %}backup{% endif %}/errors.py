"""The one error a backup command reports."""


class BackupError(Exception):
    """What went wrong and what to do, in one line; nothing was changed."""
