"""Network addresses as "host:port" text: the one parser every haperf component uses.

Owns parse_address and format_address. Invariants: IPv6 hosts are written "[v6]:port" and parsed
back without the brackets; a port is 0..65535 (0 = any free port, for listeners; callers that
need a real port check port >= 1); bad text raises ConfigError naming `what`. No imports beyond
haperf.errors, so configuration code can validate addresses without loading the transport.
"""

from haperf.errors import ConfigError


def parse_address(address: str, *, what: str = "address") -> tuple[str, int]:
    """Split "host:port" (or "[v6]:port") into (host, port); ConfigError when it is not one."""
    if not isinstance(address, str):
        raise ConfigError(f"{what} must be a 'host:port' string, got {address!r}")
    host, sep, port_text = address.rpartition(":")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    if not sep or not host or not port_text.isdigit():
        raise ConfigError(
            f"{what} must look like 'host:port' (e.g. 127.0.0.1:7001), got {address!r}"
        )
    port = int(port_text)
    if not 0 <= port <= 65535:
        raise ConfigError(f"{what} port must be in 0..65535, got {address!r}")
    return host, port


def format_address(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
