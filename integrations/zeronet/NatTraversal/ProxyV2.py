"""PROXY protocol version 2 header (HAProxy's proxy-protocol.txt, section 2.2), as
`nat expose --proxy-protocol` sends it first on every exposed connection:

    signature (12) | ver_cmd (1) | fam (1) | len (2, big endian) | addresses (len)

ver_cmd 0x21 = PROXY (addresses follow), 0x20 = LOCAL (keep the socket's own address).
fam 0x11 = TCP over IPv4 (src 4, dst 4, src port 2, dst port 2), 0x21 = TCP over IPv6 (16, 16, 2, 2).
"""
import socket
import struct
import time

SIGNATURE = b"\r\n\r\n\x00\r\nQUIT\n"
HEADER_LEN = 16
MAX_ADDRESS_LEN = 1024  # addresses (36 bytes at most for TCP) plus TLVs; nat sends none


class ProxyV2Error(Exception):
    code = "PROXY_V2"


def parseHeader(header, body):
    """Returns (ip, port) of the original source, or None for LOCAL / unsupported families."""
    if header[:12] != SIGNATURE:
        raise ProxyV2Error("PROXY v2: bad signature")
    ver_cmd, fam, length = header[12], header[13], struct.unpack(">H", header[14:16])[0]
    if ver_cmd >> 4 != 2:
        raise ProxyV2Error("PROXY v2: version %d" % (ver_cmd >> 4))
    if len(body) != length:
        raise ProxyV2Error("PROXY v2: %d address bytes, header says %d" % (len(body), length))
    if ver_cmd & 0x0F == 0:
        return None  # LOCAL: a health check of the proxy itself
    if ver_cmd & 0x0F != 1:
        raise ProxyV2Error("PROXY v2: command %d" % (ver_cmd & 0x0F))
    family = fam >> 4
    if family == 1 and length >= 12:
        return socket.inet_ntop(socket.AF_INET, body[0:4]), struct.unpack(">H", body[8:10])[0]
    if family == 2 and length >= 36:
        return socket.inet_ntop(socket.AF_INET6, body[0:16]), struct.unpack(">H", body[32:34])[0]
    return None


def _recvExact(sock, n):
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            raise ProxyV2Error("PROXY v2: connection closed after %d of %d header bytes" % (len(data), n))
        data += chunk
    return data


def startsWithHeader(sock, timeout=10):
    """Peeks (without consuming) until the first 12 bytes are known: True when they are the
    PROXY v2 signature. False as soon as a byte differs, or when the peer closes or stays silent."""
    deadline = time.time() + timeout
    while True:
        got = sock.recv(len(SIGNATURE), socket.MSG_PEEK)
        if not got or got != SIGNATURE[:len(got)]:
            return False
        if len(got) == len(SIGNATURE):
            return True
        if time.time() > deadline:
            return False
        time.sleep(0.05)  # gevent-patched: yields to the other greenlets


def readHeader(sock, timeout=10):
    """Consumes a PROXY v2 header from `sock`: (ip, port) of the original source, or None (LOCAL)."""
    before = sock.gettimeout()
    sock.settimeout(timeout)
    try:
        header = _recvExact(sock, HEADER_LEN)
        length = struct.unpack(">H", header[14:16])[0]
        if length > MAX_ADDRESS_LEN:
            raise ProxyV2Error("PROXY v2: address block of %d bytes" % length)
        return parseHeader(header, _recvExact(sock, length))
    finally:
        sock.settimeout(before)
