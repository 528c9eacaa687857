"""Pure ASGI middleware: each layer wraps `send` or `receive` only where it must."""
