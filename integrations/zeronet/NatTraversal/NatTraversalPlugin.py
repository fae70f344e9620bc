"""NatTraversal: makes the fileserver reachable behind a NAT with the `nat` command.

On start the fileserver gets a port mapping from the router (PCP, NAT-PMP or UPnP IGD) or, when
the router maps nothing and a nat-server is configured, a public port on that server
(`nat expose --public --proxy-protocol`). ZeroNet's external address and announced port are set
from what the child reported. Exposed connections arrive from the local nat process (127.0.0.1)
with a PROXY v2 header naming the real peer, which this plugin reads so that TLS, flood
protection and peer records work per real peer. With --nat_announce_via_server the tracker
announces leave through the server's public address (nat expose --outbound-socks), so that
trackers record SERVER:PORT.

With --nat_advertise_peer the owner of an exposed fileserver also lets the server tell its peer id
as the port's owner (nat expose --advertise-peer) and serves the fileserver over peer links (a
second child, `nat expose 127.0.0.1:PORT --allow-any --proxy-protocol`), so that a fetching
ZeroNet with this plugin (--nat_direct, Direct.py) connects to it over a direct peer link instead
of through the server.
"""
import atexit
import json
import logging
import os
import shlex
import signal
import socket

import gevent
from gevent import subprocess

from Config import config
from Plugin import PluginManager
from util import helper

from Connection import Connection

from . import Direct, ProxyV2
from .NatChild import NatChild, dieWithParent

allow_reload = False  # the child process and the signal handler live across reloads

log = logging.getLogger("NatTraversal")


class NatState(object):
    """What the plugin knows: the supervisor and the address the fileserver is reachable at."""

    def __init__(self):
        self.child = None
        self.reachable = None
        self.file_server = None
        self.ip_external_before = None
        self.trackers_proxy_before = None
        self.socks = None  # "127.0.0.1:PORT" of nat expose --outbound-socks, once it listens
        self.peer_id = None  # with --nat_advertise_peer: this fileserver's peer id (nat id)
        self.identity = None  # ... and the file of its key
        self.link_child = None  # with --nat_advertise_peer: the peer-link nat expose, once exposed
        self.router = None  # Direct.DirectRouter of the fetching side, made on first use

    @property
    def exposed(self):
        return self.reachable is not None and self.reachable.mode == "expose"


state = NatState()


def natArgv():
    return shlex.split(config.nat_bin)


def configIdentity():
    """With --nat_config: its "identity" (the public child takes its key from there, else nat's default)."""
    try:
        with open(config.nat_config, encoding="utf8") as f:
            value = json.load(f).get("identity")
        return value if isinstance(value, str) else None
    except (OSError, ValueError, AttributeError):
        return None


def ownPeerId():
    """Creates (first time) and reads the key the public child advertises, with `nat id`: sets state.peer_id
    and state.identity. Without --nat_config it is DATA_DIR/nat-identity.pem; with it, the file's "identity"
    or nat's default identity (--identity on the command line would make nat ignore the file's "user")."""
    if config.nat_config:
        key = configIdentity()
    else:
        key = os.path.join(config.data_dir, "nat-identity.pem")
    argv = natArgv() + ["id", "--json"] + (["--identity", key] if key else [])
    try:
        out = json.loads(subprocess.check_output(argv, stdin=subprocess.DEVNULL, timeout=30, preexec_fn=dieWithParent).decode("utf8"))
        state.peer_id, state.identity = out["id"], out["identity"]
    except Exception as err:
        log.error("--nat_advertise_peer: cannot read this peer's id with %s: %s; the owner is not advertised" % (" ".join(argv), err))


def linkCommand(port, target_ip):
    """The peer-link exposure of the fileserver: any peer of the rendezvous may open a link (the site is public anyway)."""
    argv = natArgv() + ["expose", "%s:%s" % (target_ip, port), "--name", "zeronet-%s" % state.peer_id, "--allow-any", "--proxy-protocol"]
    return argv + ["--rendezvous", config.nat_rendezvous, "--identity", state.identity, "--json"]


def buildCommands(port, target_ip):
    """[(mode, argv)] to try, in order, as --nat_mode asks."""
    modes = {"auto": ["map", "expose"], "map": ["map"], "expose": ["expose"]}.get(config.nat_mode, [])
    commands = []
    for mode in modes:
        if mode == "map":
            argv = natArgv() + ["map", "add", str(port), "--protocol", "tcp", "--json", "--state", "%s/nat-portmap.json" % config.data_dir]
            if config.nat_public_port:
                argv += ["--external", str(config.nat_public_port)]
            if config.nat_gateway:
                argv += ["--gateway", config.nat_gateway]
            commands.append((mode, argv))
        elif mode == "expose" and (config.nat_rendezvous or config.nat_config):
            argv = natArgv() + ["expose", "%s:%s" % (target_ip, port), "--public", "--proxy-protocol", "--json"]
            argv += ["--public-port", str(config.nat_public_port or port)]
            if config.nat_rendezvous:
                argv += ["--rendezvous", config.nat_rendezvous]
            if config.nat_config:
                argv += ["--config", config.nat_config]
            if config.nat_insecure:
                argv += ["--insecure"]
            if config.nat_announce_via_server:
                argv += ["--outbound-socks", "127.0.0.1:0"]  # nat picks the port and reports it
            if state.peer_id:
                argv += ["--advertise-peer"] + ([] if config.nat_config else ["--identity", state.identity])
            commands.append((mode, argv))
        elif mode == "expose" and config.nat_mode == "expose":
            log.error("--nat_mode expose needs --nat_rendezvous URL (or --nat_config FILE)")
        elif mode == "expose":
            log.info("no --nat_rendezvous (or --nat_config): only a port mapping from the router is tried")
    return commands


def onReachable(reachable):
    changed = state.reachable is None or (state.reachable.ip, state.reachable.port) != (reachable.ip, reachable.port)
    state.reachable = reachable
    config.ip_external = [reachable.ip]
    # ZeroNet blacklists (external ip, local port) as itself; the public port may differ.
    from Site import SiteManager
    if (reachable.ip, reachable.port) not in SiteManager.peer_blacklist:
        SiteManager.peer_blacklist.append((reachable.ip, reachable.port))
    useSocks()
    log.info("fileserver reachable at %s:%s (%s)" % (reachable.ip, reachable.port, reachable.mode))
    if changed and state.file_server and state.file_server.port_opened:
        gevent.spawn(reannounce)
    if reachable.mode == "expose" and state.peer_id and state.link_child is None and state.file_server:
        server = state.file_server
        argv = linkCommand(server.port, "127.0.0.1" if server.ip in ("0.0.0.0", "::", "*") else server.ip)
        state.link_child = NatChild([("link", argv)], env=dict(os.environ)).start()
        log.info("owner advertised as peer %s; the fileserver is also served over peer links" % state.peer_id)


def useSocks():
    """Announces through the server's SOCKS endpoint while exposed and it listens; else as configured."""
    proxy = state.socks if state.exposed and state.socks else state.trackers_proxy_before
    if proxy == config.trackers_proxy:
        return
    config.trackers_proxy = proxy
    # ZeroNet keeps and reuses tracker connections: close those opened the other way, so that
    # the next announce connects as configured now (and the tracker records the right address).
    if state.file_server:
        for connection in state.file_server.connections[:]:
            if getattr(connection, "is_tracker_connection", False):
                connection.close("NatTraversal: tracker connections now via %s" % ("the server" if proxy == state.socks else "the NAT"))


def onEvent(mode, event):
    kind = event.get("event")
    if kind == "outbound-socks" and event.get("address"):
        state.socks = event["address"]
        log.info("tracker announces go through the server: SOCKS5 %s" % state.socks)
        useSocks()
    elif kind == "outbound" and event.get("state") == "refused":
        log.error("nat-server refused an announce connection to %s (%s): the server needs --expose-outbound and a peer policy that allows the tracker" % (
            event.get("target"), event.get("reason") or event.get("error")))


def onLost(mode):
    log.info("the %s child is gone: %s:%s is no longer reachable" % (mode, state.reachable.ip if state.reachable else "?", state.reachable.port if state.reachable else "?"))
    state.reachable = None
    state.socks = None
    config.ip_external = state.ip_external_before
    useSocks()


def reannounce():
    server = state.file_server
    server.portCheck()
    for site in list(server.sites.values()):
        if site.isServing():
            site.announce(mode="update", force=True)


def stopChild():
    for child in (state.link_child, state.child):
        if child:
            child.stop()
    if state.router:
        state.router.stop()


def installSignalHandlers():
    def onTerm():
        # Stop the child, then die of SIGTERM as ZeroNet does without this plugin.
        def finish():
            stopChild()
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            os.kill(os.getpid(), signal.SIGTERM)
        gevent.spawn(finish)

    try:
        gevent.signal_handler(signal.SIGTERM, onTerm)
    except Exception as err:  # not the main thread (tests): the child still dies with us (PR_SET_PDEATHSIG)
        log.debug("no SIGTERM handler: %s" % err)
    atexit.register(lambda: [c.stopNow() for c in (state.child, state.link_child) if c])


def ready():
    """An address, and with --nat_announce_via_server while exposed, the SOCKS endpoint too (the first
    announces must not leave directly: the tracker connection is kept and reused)."""
    if state.reachable is None:
        return False
    return not (config.nat_announce_via_server and state.exposed) or state.socks is not None


def startNat(file_server):
    commands = buildCommands(file_server.port, "127.0.0.1" if file_server.ip in ("0.0.0.0", "::", "*") else file_server.ip)
    if not commands:
        if config.nat_mode != "off":
            log.info("nothing to try (--nat_mode %s%s)" % (config.nat_mode, ", no --nat_rendezvous" if config.nat_mode == "auto" else ""))
        return
    state.file_server = file_server
    if config.nat_advertise_peer and config.nat_rendezvous and any(mode == "expose" for mode, _ in commands):
        ownPeerId()
        commands = buildCommands(file_server.port, "127.0.0.1" if file_server.ip in ("0.0.0.0", "::", "*") else file_server.ip)
    elif config.nat_advertise_peer:
        log.info("--nat_advertise_peer needs --nat_rendezvous (and public exposure): not advertised")
    state.ip_external_before = config.ip_external
    state.trackers_proxy_before = config.trackers_proxy
    env = dict(os.environ)
    if config.nat_user:
        env["NAT_EXPOSE_USER"] = config.nat_user  # off the command line, where ps shows it
    state.child = NatChild(commands, env=env, on_reachable=onReachable, on_lost=onLost, on_event=onEvent).start()
    installSignalHandlers()
    waited = 0.0
    while not ready() and waited < config.nat_wait and not state.child.stopping:
        gevent.sleep(0.2)
        waited += 0.2
    if state.reachable is None:
        log.info("no address after %s s; ZeroNet starts with its own port check, the address is set once the child reports one" % config.nat_wait)


@PluginManager.registerTo("FileServer")
class FileServerPlugin(object):
    def start(self, *args, **kwargs):
        if config.nat_mode != "off" and not self.stopping:
            startNat(self)
        return super(FileServerPlugin, self).start(*args, **kwargs)

    def stop(self, *args, **kwargs):
        stopChild()
        return super(FileServerPlugin, self).stop(*args, **kwargs)

    def handleIncomingConnection(self, sock, addr):
        ip = addr[0].lower().replace("::ffff:", "", 1)
        # exposed connections (public port or peer links) come from the local nat child with a PROXY v2 header
        if (state.exposed or state.link_child is not None) and ip in ("127.0.0.1", "::1"):
            try:
                if ProxyV2.startsWithHeader(sock):
                    source = ProxyV2.readHeader(sock)
                    if source:
                        addr = (source[0], source[1])
            except Exception as err:  # a broken header: drop the connection, as a proxy-aware server does
                log.info("connection from %s:%s dropped: %s" % (addr[0], addr[1], err))
                sock.close()
                return False
        return super(FileServerPlugin, self).handleIncomingConnection(sock, addr)


def directRouter():
    """The fetching side's router (Direct.py), when --nat_direct and --nat_rendezvous are set; made on first use."""
    if state.router is None and config.nat_direct and config.nat_rendezvous:
        ips = Direct.serverIps(config.nat_rendezvous)
        state.router = Direct.DirectRouter(natArgv(), config.nat_rendezvous, config.data_dir, ips, max_links=config.nat_direct_links,
                                           wait=config.nat_direct_wait, insecure=config.nat_insecure, env=dict(os.environ))
    if state.router is not None:
        state.router.own_peer = state.peer_id
    return state.router


_createSocket = Connection.createSocket


def createSocket(self):
    """Connection.createSocket (ZeroNet's Connection class takes no plugins): an outgoing connection to a
    public port of the nat-server whose owner runs this plugin gets a socket that connects over a direct
    peer link; the Connection keeps SERVER:PORT as the peer's address."""
    router = directRouter() if self.ip_type == "ipv4" else None
    local = router.route(self.ip, self.port, self.server) if router else None
    if local is None:
        return _createSocket(self)
    sock = Direct.DirectSocket(socket.AF_INET, socket.SOCK_STREAM)
    sock.redirect = local
    sock.target = (self.ip, self.port)
    return sock


Connection.createSocket = createSocket


@PluginManager.registerTo("SiteAnnouncer")
class SiteAnnouncerPlugin(object):
    def getOpenedServiceTypes(self, *args, **kwargs):
        back = super(SiteAnnouncerPlugin, self).getOpenedServiceTypes(*args, **kwargs)
        reachable = state.reachable
        if reachable:
            ip_type = helper.getIpType(reachable.ip)
            if ip_type not in back:
                back.append(ip_type)  # reachable through the mapping or the server (also with --trackers_proxy)
        return back

    def announceTracker(self, *args, **kwargs):
        if state.reachable:
            self.fileserver_port = state.reachable.port  # the public port, not the local one
        return super(SiteAnnouncerPlugin, self).announceTracker(*args, **kwargs)


@PluginManager.registerTo("ConfigPlugin")
class ConfigPlugin(object):
    def createArguments(self):
        group = self.parser.add_argument_group("NatTraversal plugin")
        group.add_argument("--nat_mode", help="How to make the fileserver reachable: auto (router port mapping, else the nat-server), map, expose, off",
                           default="auto", choices=["auto", "map", "expose", "off"])
        group.add_argument("--nat_bin", help="The nat command (split like a shell line, e.g. \"node /opt/nat/main.js\")", default="nat", metavar="command")
        group.add_argument("--nat_rendezvous", help="ws:// or wss:// URL of the nat-server's rendezvous service, for public exposure", default=None, metavar="url")
        group.add_argument("--nat_user", help="NAME:PASSWORD of a user of the nat-server (passed in the environment, not on the command line)", default=None, metavar="name:password")
        group.add_argument("--nat_config", help="A `nat expose --config` JSON file (rendezvous, user, identity)", default=None, metavar="path")
        group.add_argument("--nat_public_port", help="Public port to ask for (0: the fileserver port)", default=0, type=int, metavar="port")
        group.add_argument("--nat_gateway", help="Router to ask for the port mapping (default: the default gateway)", default=None, metavar="ip")
        group.add_argument("--nat_announce_via_server", help="While exposed, send tracker announces through the nat-server (nat expose --outbound-socks; "
                           "needs nat-server --expose-outbound), so that trackers record the server's address", action="store_true")
        group.add_argument("--nat_insecure", help="Accept the nat-server's TLS certificate without checking it", action="store_true")
        group.add_argument("--nat_advertise_peer", help="While exposed through the nat-server, let it tell this fileserver's peer id as the owner of the public port "
                           "and serve the fileserver over peer links, so that peers with this plugin connect directly. Privacy: whoever asks the server "
                           "learns the peer id, and a direct link shows them this host's NAT address", type="bool", choices=[True, False], default=False)
        group.add_argument("--nat_direct", help="Connect to a public port of the nat-server (--nat_rendezvous) over a direct peer link when its owner advertises itself",
                           type="bool", choices=[True, False], default=True)
        group.add_argument("--nat_direct_links", help="Direct peer links (nat connect children) at once", default=8, type=int, metavar="count")
        group.add_argument("--nat_direct_wait", help="Seconds to wait for a direct path before connecting through the server", default=15, type=float, metavar="seconds")
        group.add_argument("--nat_wait", help="Seconds to wait for the address before the fileserver starts announcing", default=30, type=float, metavar="seconds")
        return super(ConfigPlugin, self).createArguments()
