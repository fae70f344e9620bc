"""Direct connections to site owners that run this plugin too (fetching side, --nat_direct).

When ZeroNet connects to SERVER:PORT, a public port of the configured nat-server (the host of
--nat_rendezvous), the plugin asks the server who owns the port (`nat owner PORT --json`; cached,
negative answers too). When the owner advertises its peer id (--nat_advertise_peer on its side),
one `nat connect PEER_ID -l 127.0.0.1:0 --json` child per owner opens a peer link to it (ICE with
hole punching), and ZeroNet's socket connects to that child's local port instead: the bytes go
over the peer link, directly between the two NATs. ZeroNet's connection keeps SERVER:PORT as the
peer's address (TLS, peer records and logs are as before). Anything else falls back to
SERVER:PORT through the server, logged once per owner: no owner advertised, the child failed, or
the link found no direct path in --nat_direct_wait seconds (a relayed link brings nothing the
server's public port does not).

Bounds: at most MAX_OWNERS cached answers (positive for 10 min, negative for 2 min, a failed
lookup for 1 min), at most --nat_direct_links children (each with its own key file, because one
key registers once on the rendezvous), a child stopped once no ZeroNet connection has used its
owner for IDLE seconds, and an owner whose link failed is not tried again for 5 min.
"""
import json
import logging
import os
import socket
import time
from collections import OrderedDict, deque
from urllib.parse import urlparse

import gevent
import gevent.event
import gevent.lock
from gevent import subprocess

try:
    from .NatChild import dieWithParent
except ImportError:  # loaded on its own, outside ZeroNet (the tests)
    from NatChild import dieWithParent

log = logging.getLogger("NatTraversal")

MAX_OWNERS = 256
OWNER_TTL = 600.0
NO_OWNER_TTL = 120.0
LOOKUP_FAILED_TTL = 60.0
FAILED_TTL = 300.0
IDLE = 300.0
LOOKUP_TIMEOUT = 15.0


class TtlCache(object):
    """A bounded map whose entries expire; the oldest entry goes when it is full."""

    def __init__(self, max_entries, clock=time.time):
        self.max_entries = max_entries
        self.clock = clock
        self.entries = OrderedDict()

    def get(self, key):
        """(True, value) while the entry lives, else (False, None)."""
        hit = self.entries.get(key)
        if hit is None:
            return False, None
        if hit[1] <= self.clock():
            del self.entries[key]
            return False, None
        return True, hit[0]

    def put(self, key, value, ttl):
        self.entries.pop(key, None)
        while len(self.entries) >= self.max_entries:
            self.entries.popitem(last=False)
        self.entries[key] = (value, self.clock() + ttl)


def parseOwner(output):
    """The owner's peer id in `nat owner --json` output; None when not advertised. Raises ValueError
    when the output holds no answer (the lookup failed)."""
    for line in output.splitlines():
        try:
            event = json.loads(line)
        except ValueError:
            continue
        if not isinstance(event, dict):
            continue
        if event.get("event") == "owner" and isinstance(event.get("peer"), str):
            return event["peer"]
        if event.get("event") == "not-advertised":
            return None
        if event.get("event") == "failed":
            raise ValueError(event.get("error") or "lookup failed")
    raise ValueError("no answer")


class Link(object):
    """One `nat connect` child: a peer link to one owner and the local port that reaches it."""

    def __init__(self, peer, slot, argv, env):
        self.peer = peer
        self.slot = slot
        self.argv = argv
        self.env = env
        self.proc = None
        self.port = None
        self.path = None
        self.linked = False
        self.dead = False
        self.changed = gevent.event.Event()
        self.last_used = time.time()
        self.users = []  # (connection server, ip, port) that routed through it
        self.stderr = deque(maxlen=20)  # its last lines, for the log when it exits

    def start(self):
        try:
            self.proc = subprocess.Popen(self.argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=self.env, preexec_fn=dieWithParent)
        except OSError as err:
            log.error("cannot start %s: %s; set --nat_bin to the nat command" % (self.argv[0], err))
            self.dead = True
            return self
        log.info("nat connect child started (pid %s) for owner %s" % (self.proc.pid, self.peer))
        gevent.spawn(self.read)
        gevent.spawn(self.readStderr)
        return self

    def readStderr(self):
        # Drained all the time: a full pipe would block the child.
        for raw in self.proc.stderr:
            self.stderr.append(raw.decode("utf8", "replace").rstrip())

    def read(self):
        for raw in self.proc.stdout:
            try:
                event = json.loads(raw.decode("utf8", "replace"))
            except ValueError:
                continue
            if not isinstance(event, dict):
                continue
            kind = event.get("event")
            log.info("nat connect %s event: %s" % (self.proc.pid, json.dumps(event)))
            if kind == "listening":
                self.port = int(str(event.get("listen", "")).rpartition(":")[2] or 0) or None
            elif kind == "path":
                self.path = event.get("path")
            elif kind in ("link", "reconnected"):
                self.linked = True
            elif kind == "link-lost":
                self.linked = False
            self.changed.set()
        code = self.proc.wait()
        gevent.sleep(0.1)  # the last stderr lines
        err = " / ".join(line for line in self.stderr if line)
        log.info("nat connect child %s (owner %s) exited with code %s%s" % (self.proc.pid, self.peer, code, ": %s" % err[-500:] if err else ""))
        self.dead = True
        self.linked = False
        self.changed.set()

    @property
    def direct(self):
        return self.linked and not self.dead and self.port is not None and self.path == "direct"

    def waitDirect(self, timeout):
        """True once the link is up on a direct path; False when the child died or `timeout` passed."""
        deadline = time.time() + timeout
        while not self.direct and not self.dead:
            left = deadline - time.time()
            if left <= 0:
                return False
            self.changed.clear()
            self.changed.wait(min(left, 1.0))
        return self.direct

    def inUse(self):
        return any(c.ip == ip and c.port == port and not c.closed for server, ip, port in self.users for c in list(server.connections))

    def stop(self):
        proc = self.proc
        if proc and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
        self.dead = True


class DirectRouter(object):
    """Where ZeroNet's connection to (ip, port) should go: a local `nat connect` port, or None (as asked)."""

    def __init__(self, nat_argv, rendezvous, key_dir, server_ips, max_links=8, wait=15.0, insecure=False, env=None):
        self.nat_argv = nat_argv
        self.rendezvous = rendezvous
        self.key_dir = key_dir
        self.server_ips = set(server_ips)
        self.max_links = max_links
        self.wait = wait
        self.insecure = insecure
        self.env = env
        self.owners = TtlCache(MAX_OWNERS)
        self.failed = TtlCache(MAX_OWNERS)
        self.links = {}  # peer id -> Link
        self.locks = {}  # port -> lock (at most 65535)
        self.own_peer = None  # this ZeroNet's own advertised peer id: never a link to itself
        self.reaper = None

    def ownerOf(self, port):
        found, peer = self.owners.get(port)
        if found:
            return peer
        argv = self.nat_argv + ["owner", str(port), "--rendezvous", self.rendezvous, "--json"] + (["--insecure"] if self.insecure else [])
        try:
            proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=self.env, preexec_fn=dieWithParent)
            out, _ = proc.communicate(timeout=LOOKUP_TIMEOUT)
            peer = parseOwner(out.decode("utf8", "replace"))
        except (OSError, ValueError, subprocess.TimeoutExpired) as err:
            if isinstance(err, subprocess.TimeoutExpired):
                proc.kill()
            log.info("owner of %s port %s: lookup failed (%s); connecting through the server" % (self.rendezvous, port, err))
            self.owners.put(port, None, LOOKUP_FAILED_TTL)
            return None
        self.owners.put(port, peer, OWNER_TTL if peer else NO_OWNER_TTL)
        log.info("owner of server port %s: %s" % (port, peer or "not advertised (connections go through the server)"))
        return peer

    def linkTo(self, peer):
        link = self.links.get(peer)
        if link and not link.dead:
            return link
        self.links.pop(peer, None)
        if len(self.links) >= self.max_links:
            idle = sorted((l for l in self.links.values() if not l.inUse()), key=lambda l: l.last_used)
            if not idle:
                return None
            self.drop(idle[0].peer, "making room for another owner")
        slot = min(set(range(self.max_links)) - set(l.slot for l in self.links.values()))
        key = os.path.join(self.key_dir, "nat-link-%d.pem" % slot)
        argv = self.nat_argv + ["connect", peer, "--listen", "127.0.0.1:0", "--rendezvous", self.rendezvous, "--identity", key, "--json"]
        link = self.links[peer] = Link(peer, slot, argv, self.env).start()
        if self.reaper is None:
            self.reaper = gevent.spawn(self.reap)
        return link

    def drop(self, peer, why):
        link = self.links.pop(peer, None)
        if link:
            log.info("stopping the nat connect child of owner %s: %s" % (peer, why))
            link.stop()

    def fallBack(self, peer, ip, port, why):
        """Through the server from now on (for FAILED_TTL), said once per owner."""
        found, _ = self.failed.get(peer)
        if not found:
            log.info("owner %s of %s:%s: %s; connecting through the server" % (peer, ip, port, why))
        self.failed.put(peer, True, FAILED_TTL)
        self.drop(peer, why)

    def route(self, ip, port, server=None):
        """(host, port) to connect to instead of (ip, port), or None. Blocks (this greenlet) while it finds out."""
        if ip not in self.server_ips:
            return None
        lock = self.locks.get(port)
        if lock is None:
            lock = self.locks[port] = gevent.lock.RLock()
        with lock:  # one lookup and one child per owner, however many connections ask at once
            peer = self.ownerOf(port)
            if peer is None or peer == self.own_peer or self.failed.get(peer)[0]:
                return None
            link = self.linkTo(peer)
            if link is None:
                log.info("all %s direct links are in use; %s:%s goes through the server" % (self.max_links, ip, port))
                return None
            if not link.waitDirect(self.wait):
                why = "the nat connect child failed" if link.dead else "no direct path within %.0f s (path %s)" % (self.wait, link.path or "none")
                self.fallBack(peer, ip, port, why)
                return None
            link.last_used = time.time()
            if server is not None and (server, ip, port) not in link.users:
                link.users.append((server, ip, port))
            log.info("connection to %s:%s goes over the direct peer link to owner %s (path %s, local port %s)" % (ip, port, peer, link.path, link.port))
            return ("127.0.0.1", link.port)

    def reap(self):
        while True:
            gevent.sleep(30)
            now = time.time()
            for link in list(self.links.values()):
                if link.dead:
                    self.links.pop(link.peer, None)
                elif now - link.last_used > IDLE and not link.inUse():
                    self.drop(link.peer, "idle for %.0f s" % (now - link.last_used))

    def stop(self):
        for peer in list(self.links):
            self.drop(peer, "ZeroNet stops")


def serverIps(rendezvous):
    """The addresses of the nat-server behind the rendezvous URL (its public ports are there)."""
    host = urlparse(rendezvous).hostname
    if not host:
        return []
    try:
        return sorted(set(info[4][0] for info in socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)))
    except socket.gaierror as err:
        log.error("--nat_rendezvous %s: cannot resolve %s (%s): direct links are off" % (rendezvous, host, err))
        return []


class DirectSocket(socket.socket):
    """A socket whose connect() goes to `redirect` when asked for `target` (set by the plugin)."""

    redirect = None
    target = None

    def connect(self, address):
        if self.redirect is not None and tuple(address[:2]) == self.target:
            address = self.redirect
        return super(DirectSocket, self).connect(address)
