"""What `APP_ENV=production` refuses in the network settings and in secrets.

Each check returns one sentence per problem that names the variable and says what to do.
"""

import ipaddress


def cors_problems(origins: list[str]) -> list[str]:
    """`*` lets every site read the responses; `null` is the origin of sandboxed frames and
    local files, which any site can produce."""
    refused = [origin for origin in origins if origin.lower() in {"*", "null"}]
    if not refused:
        return []
    return [
        "CORS_ORIGINS must list explicit origins in production, not "
        + ", ".join(f"'{origin}'" for origin in refused)
    ]


def _is_narrow_wildcard(host: str) -> bool:
    """`*.example.com`: one label under a name of at least two labels, no other `*`."""
    if not host.startswith("*."):
        return "*" not in host
    name = host.removeprefix("*.")
    return "*" not in name and len([label for label in name.split(".") if label]) >= 2


def host_problems(hosts: list[str]) -> list[str]:
    refused = [host for host in hosts if not _is_narrow_wildcard(host)]
    if not refused:
        return []
    return [
        "TRUSTED_HOSTS must list this service's names in production (a wildcard only as "
        "*.example.com), not " + ", ".join(f"'{host}'" for host in refused)
    ]


def _is_everyone(proxy: str) -> bool:
    if proxy == "*":
        return True
    try:
        return ipaddress.ip_network(proxy, strict=False).prefixlen == 0
    except ValueError:
        return False  # a host name or a Unix socket path: not a network


def proxy_problems(proxies: list[str]) -> list[str]:
    """Trusting every peer's `X-Forwarded-For` lets any client choose the address the service
    sees (and so its quota and its log lines)."""
    refused = [proxy for proxy in proxies if _is_everyone(proxy)]
    if not refused:
        return []
    return [
        "TRUSTED_PROXIES must list the addresses of your proxies in production, not "
        + ", ".join(f"'{proxy}'" for proxy in refused)
    ]


def weak_secret_problems(name: str, secret: str, hint: str) -> list[str]:
    """A secret typed by hand rather than generated: a repeated character or pattern leaves
    few different characters (a random one of 32 hex digits has about 14)."""
    needed = min(12, len(secret) // 3)
    if len(set(secret)) < needed:
        return [
            f"{name} has fewer than {needed} different characters, so it was not generated: {hint}"
        ]
    return []
