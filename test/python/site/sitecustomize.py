# Loaded by Python at start-up when this directory is on PYTHONPATH: the
# Keyward client tests (internal/e2e/python_test.go, az_test.go) put it
# there for /usr/bin/python3 and for az. It changes no client code. It does
# two things, both only inside the test's processes:
#
#  1. Name resolution: when KEYWARD_MAP_LOCALHOST=1, "localhost" and every
#     name under ".localhost" resolve to 127.0.0.1, as an /etc/hosts line or
#     libnss-myhostname would (the test sets it only when the machine's
#     resolver does not already do this).
#  2. Loopback only: a connection to any address that is not loopback fails
#     at once, and its destination is appended to $KEYWARD_BLOCKED_LOG, so
#     the test fails (instead of hanging) when a client tries to leave the
#     machine (instance discovery, telemetry, update checks).
import os
import socket

_getaddrinfo = socket.getaddrinfo
_connect = socket.socket.connect
_connect_ex = socket.socket.connect_ex


def _is_local_name(host):
    if isinstance(host, bytes):
        host = host.decode("ascii", "replace")
    if not isinstance(host, str):
        return False
    h = host.rstrip(".").lower()
    return h == "localhost" or h.endswith(".localhost")


def _is_loopback_ip(host):
    if isinstance(host, bytes):
        host = host.decode("ascii", "replace")
    return isinstance(host, str) and (host.startswith("127.") or host == "::1")


def getaddrinfo(host, port, family=0, type=0, proto=0, flags=0):
    if os.environ.get("KEYWARD_MAP_LOCALHOST") == "1" and _is_local_name(host):
        host = "127.0.0.1"
        if family == socket.AF_INET6:
            family = socket.AF_INET
    elif host is not None and not _is_local_name(host) and not _is_loopback_ip(host):
        # A name outside the machine: fail now rather than wait for DNS.
        _blocked((host, port))
        raise socket.gaierror(socket.EAI_NONAME, "keyward test: %r is not resolved: the client tests stay on loopback" % (host,))
    return _getaddrinfo(host, port, family, type, proto, flags)


def _loopback(address):
    if not isinstance(address, tuple) or not address:
        return True  # AF_UNIX and friends
    host = address[0]
    if isinstance(host, bytes):
        host = host.decode("ascii", "replace")
    return host.startswith("127.") or host in ("::1", "localhost") or host.startswith("::ffff:127.")


def _blocked(address):
    log = os.environ.get("KEYWARD_BLOCKED_LOG")
    if log:
        with open(log, "a") as f:
            f.write("%r\n" % (address,))
    return ConnectionRefusedError(
        "keyward test: a connection to %r was refused: the client tests stay on loopback" % (address,))


def connect(self, address):
    if not _loopback(address):
        raise _blocked(address)
    return _connect(self, address)


def connect_ex(self, address):
    if not _loopback(address):
        _blocked(address)
        return 111  # ECONNREFUSED
    return _connect_ex(self, address)


if os.environ.get("KEYWARD_LOOPBACK_ONLY") == "1" or os.environ.get("KEYWARD_MAP_LOCALHOST") == "1":
    socket.getaddrinfo = getaddrinfo
    socket.socket.connect = connect
    socket.socket.connect_ex = connect_ex

# Keep what the distribution's sitecustomize does (Debian: apport's hook).
try:
    import apport_python_hook  # noqa: F401
except ImportError:
    pass
else:
    apport_python_hook.install()
