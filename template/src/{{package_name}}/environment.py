"""The settings of a command, read from the environment (and `.env`): a wrong value ends the
command with exit status 2 and one line per variable, not a traceback.

The settings (pydantic, and the parsers of their values) are imported when a command loads
them, not when the command line is parsed: `--help` stays fast.
"""

import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pydantic import ValidationError

    from .settings import Settings


def describe_settings_error(error: "ValidationError") -> str:
    """One line per wrong variable, named as it is set in the environment."""
    from .settings import Settings

    lines = ["Invalid configuration (environment variables or .env):"]
    for item in error.errors():
        message = item["msg"].removeprefix("Value error, ")
        if item["type"] == "missing":
            hint = Settings.model_fields[str(item["loc"][0])].description
            message = f"is not set; {hint}" if hint else "is not set"
        if item["loc"]:
            lines.append(f"  {str(item['loc'][0]).upper()}: {message}")
        else:
            lines.extend(f"  {part}" for part in message.splitlines())
    return "\n".join(lines)


def load_settings() -> "Settings":
    from pydantic import ValidationError

    from .settings import Settings

    try:
        return Settings()
    except ValidationError as error:
        print(describe_settings_error(error), file=sys.stderr)
        raise SystemExit(2) from None
