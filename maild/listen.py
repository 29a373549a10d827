"""Listen addresses from maild.yaml, and starting a listener on the running loop.

    127.0.0.1:2424     an IPv4 address (or a host name) and a port
    [::1]:2424         an IPv6 address, in brackets
    *:2424             every local address
    unix:/run/maild/lmtp.sock
                       a Unix socket (a stale socket file is replaced)

Port 0 asks the kernel for a free port; read it from `server.sockets`.  A Unix socket is
made mode 0660 whatever the umask (the service runs with UMask=0077): the MTA connects
as a member of maild's group (`usermod -aG maild postfix`; /run/maild is 0750).
"""
from __future__ import annotations

import asyncio
import os
import socket
from dataclasses import dataclass

from aiosmtpd.smtp import DATA_SIZE_DEFAULT

from maild.intake import IntakeHandler
from maild.lmtp import lmtp_factory
from maild.smtp import smtp_factory

FACTORIES = {"lmtp": lmtp_factory, "smtp": smtp_factory}
UNIX_PREFIX = "unix:"
UNIX_SOCKET_MODE = 0o660       # maild and its group (the MTA)


@dataclass(frozen=True)
class ListenAddress:
    host: str | None = None     # None with a port: every local address
    port: int | None = None
    path: str | None = None     # a Unix socket

    @classmethod
    def parse(cls, spec: str) -> "ListenAddress":
        """Parse 'host:port', '[v6]:port', '*:port' or 'unix:/path'; ValueError says why."""
        text = spec.strip()
        if text.startswith(UNIX_PREFIX):
            path = text[len(UNIX_PREFIX):]
            if not path:
                raise ValueError(f"listen address {spec!r}: 'unix:' needs a socket path")
            return cls(path=path)
        host, sep, port_text = text.rpartition(":")
        if not sep or not host:
            raise ValueError(f"listen address {spec!r}: expected host:port, [ipv6]:port "
                             f"or unix:/path")
        if host.startswith("[") and host.endswith("]"):
            host = host[1:-1]
        elif ":" in host:
            raise ValueError(f"listen address {spec!r}: put an IPv6 address in brackets, "
                             f"e.g. [::1]:2424")
        if not port_text.isdigit() or int(port_text) > 65535:
            raise ValueError(f"listen address {spec!r}: port must be 0-65535")
        if not host:
            raise ValueError(f"listen address {spec!r}: empty host")
        return cls(host=None if host == "*" else host, port=int(port_text))

    def __str__(self) -> str:
        if self.path is not None:
            return UNIX_PREFIX + self.path
        host = self.host or "*"
        return f"[{host}]:{self.port}" if ":" in host else f"{host}:{self.port}"


async def start_listener(spec: str, handler: IntakeHandler, protocol: str, *,
                         data_size_limit: int | None = DATA_SIZE_DEFAULT,
                         hostname: str | None = None) -> asyncio.Server:
    """Start an LMTP or SMTP listener on the running loop; it serves until closed."""
    if protocol not in FACTORIES:
        raise ValueError(f"protocol must be one of {sorted(FACTORIES)}, not {protocol!r}")
    address = ListenAddress.parse(spec)
    loop = asyncio.get_running_loop()
    if hostname is None:
        # aiosmtpd would call socket.getfqdn() (DNS, blocking) on every connection.
        hostname = await loop.run_in_executor(None, socket.getfqdn)
    factory = FACTORIES[protocol](handler, hostname=hostname, data_size_limit=data_size_limit)
    if address.path is not None:
        server = await loop.create_unix_server(factory, address.path)
        os.chmod(address.path, UNIX_SOCKET_MODE)
        return server
    return await loop.create_server(factory, address.host, address.port)
