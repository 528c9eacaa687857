"""What `APP_ENV=production` refuses in the network settings and in secrets.

Each check returns one sentence per problem that names the variable and says what to do.
The libraries some checks need (zxcvbn, the Public Suffix List) are imported when a check
runs, so only a production start pays for loading their word and suffix lists.
"""

import functools
import ipaddress
import math
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from publicsuffixlist import PublicSuffixList


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


@functools.cache
def _public_suffix_list() -> "PublicSuffixList":
    # The snapshot bundled with the package (ICANN and private sections): nothing is fetched
    # or written at run time.
    from publicsuffixlist import PublicSuffixList

    return PublicSuffixList()


def _is_narrow_wildcard(host: str) -> bool:
    """`*.example.com`: one label under a name of at least two labels, no other `*`, and not
    under a public suffix (`*.co.uk`, `*.herokuapp.com`: names anyone can register)."""
    if not host.startswith("*."):
        return "*" not in host
    name = host.removeprefix("*.").lower().rstrip(".")
    if "*" in name or len([label for label in name.split(".") if label]) < 2:
        return False
    return not _public_suffix_list().is_public(name)


def host_problems(hosts: list[str]) -> list[str]:
    refused = [host for host in hosts if not _is_narrow_wildcard(host)]
    if not refused:
        return []
    return [
        "TRUSTED_HOSTS must list this service's names in production (a wildcard only as "
        "*.example.com, not under a public suffix), not "
        + ", ".join(f"'{host}'" for host in refused)
    ]


Network = ipaddress.IPv4Network | ipaddress.IPv6Network
# Addresses no client on the Internet has. A list of proxies may cover at most as many other
# (public) addresses as the largest private range of each family holds: a proxy fleet fits in
# far fewer, and "everyone" split into pieces (0.0.0.0/1 and 128.0.0.0/1) does not fit.
_PRIVATE: dict[int, list[Network]] = {
    4: [
        ipaddress.IPv4Network(network)
        for network in (
            "10.0.0.0/8",
            "172.16.0.0/12",
            "192.168.0.0/16",
            "100.64.0.0/10",
            "127.0.0.0/8",
            "169.254.0.0/16",
        )
    ],
    6: [ipaddress.IPv6Network(network) for network in ("fc00::/7", "fe80::/10", "::1/128")],
}
_MOST_PUBLIC_ADDRESSES = {4: 2**24, 6: 2**121}  # 10.0.0.0/8, fc00::/7
# IPv6 sockets see IPv4 clients as ::ffff:a.b.c.d: such networks trust IPv4 addresses.
_IPV4_MAPPED = ipaddress.IPv6Network("::ffff:0:0/96")


def _networks(proxy: str) -> list[Network]:
    """The networks an entry trusts, IPv4-mapped ones as the IPv4 networks they stand for."""
    if proxy == "*":
        return [ipaddress.IPv4Network("0.0.0.0/0"), ipaddress.IPv6Network("::/0")]
    try:
        network = ipaddress.ip_network(proxy, strict=False)
    except ValueError:
        return []  # a host name or a Unix socket path: not a network
    if isinstance(network, ipaddress.IPv6Network):
        if network.subnet_of(_IPV4_MAPPED):
            address = int(network.network_address) & 0xFFFF_FFFF
            return [ipaddress.IPv4Network((address, network.prefixlen - 96))]
        if _IPV4_MAPPED.subnet_of(network):
            return [network, ipaddress.IPv4Network("0.0.0.0/0")]
    return [network]


def _public_addresses(networks: list[Network], version: int) -> int:
    """How many addresses outside the private ranges the networks of one family cover."""
    count = 0
    # Disjoint once collapsed; the networks of one call are of one family.
    for network in ipaddress.collapse_addresses(networks):  # type: ignore[type-var]
        private = 0
        for reserved in _PRIVATE[version]:
            if network.subnet_of(reserved):  # type: ignore[arg-type]
                private = network.num_addresses
            elif reserved.subnet_of(network):  # type: ignore[arg-type]
                private += reserved.num_addresses
        count += network.num_addresses - private
    return count


def proxy_problems(proxies: list[str]) -> list[str]:
    """Trusting every peer's `X-Forwarded-For` lets any client choose the address the service
    sees (and so its quota and its log lines)."""
    by_version: dict[int, list[Network]] = {4: [], 6: []}
    public: list[str] = []
    for proxy in proxies:
        networks = _networks(proxy)
        for network in networks:
            by_version[network.version].append(network)
        if any(_public_addresses([network], network.version) for network in networks):
            public.append(proxy)
    if all(
        _public_addresses(networks, version) <= _MOST_PUBLIC_ADDRESSES[version]
        for version, networks in by_version.items()
    ):
        return []
    return [
        "TRUSTED_PROXIES must list the addresses of your proxies in production, not networks "
        "that together hold more public addresses than a private range (10.0.0.0/8, "
        "fc00::/7): " + ", ".join(f"'{proxy}'" for proxy in public)
    ]


# zxcvbn estimates how many guesses a secret takes: each dictionary word, keyboard run,
# repeat, sequence or date it finds costs few, and each character it cannot explain costs 10
# (so random characters score about one order of magnitude per character). A generated
# secret has at least 128 bits, and the few short patterns random characters happen to form
# explain little of it; in text typed by hand, words and patterns explain a quarter or more.
MIN_SECRET_BITS = 128
MIN_UNEXPLAINED_SHARE = 0.85
# zxcvbn's time grows faster than the length; 128 random characters are far past the bound.
ANALYSED_CHARACTERS = 128


def weak_secret_problems(name: str, secret: str, hint: str) -> list[str]:
    """A secret typed by hand rather than generated: words, patterns or too few characters
    (the secret itself is never part of the message)."""
    from zxcvbn import zxcvbn  # type: ignore[import-untyped]  # no type hints

    analysed = secret[:ANALYSED_CHARACTERS]
    # The words of the variable's own name count as dictionary words.
    words = name.lower().replace("_", " ").split()
    guesses_log10 = float(
        zxcvbn(analysed, user_inputs=words, max_length=ANALYSED_CHARACTERS)["guesses_log10"]
    )
    bits, random_bits = guesses_log10 * math.log2(10), len(analysed) * math.log2(10)
    if bits >= MIN_SECRET_BITS and bits >= MIN_UNEXPLAINED_SHARE * random_bits:
        return []
    return [
        f"{name} looks typed by hand, not generated: zxcvbn estimates it at {bits:.0f} bits, "
        f"random characters of its length at {random_bits:.0f} (words, keyboard runs, repeated "
        f"or sequential characters count for little), and a secret needs {MIN_SECRET_BITS}: "
        f"{hint}"
    ]
