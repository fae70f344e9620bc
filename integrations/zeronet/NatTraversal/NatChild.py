"""Runs and supervises the `nat` child process that makes the fileserver reachable.

Each round tries the modes in order ("map": a port mapping from the router with
`nat map add PORT --protocol tcp --json`; "expose": public exposure through a nat-server with
`nat expose 127.0.0.1:PORT --public --proxy-protocol --json`) until one reports an address, then
keeps that child; when it dies the next round starts after a backoff (1 s doubling to 60 s, back
to 1 s once a child has lived 60 s). stop() ends the child (SIGTERM, SIGKILL after 5 s).
"""
import ctypes
import json
import logging
import os
import signal
import time

import gevent
from gevent import subprocess  # ZeroNet does not patch subprocess: this one does not block the loop

PR_SET_PDEATHSIG = 1


def dieWithParent():
    # The child gets SIGTERM when ZeroNet dies, even by SIGKILL (Linux only; elsewhere a no-op).
    try:
        ctypes.CDLL(None).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    except Exception:
        pass


def parseAddress(text):
    """"203.0.113.1:15441" or "[2001:db8::1]:15441" -> (ip, port)."""
    host, _, port = text.rpartition(":")
    return host.strip("[]"), int(port)


class Reachable(object):
    """What a child reported: how the fileserver is reachable."""

    def __init__(self, mode, ip, port):
        self.mode = mode
        self.ip = ip
        self.port = port

    def __repr__(self):
        return "%s %s:%s" % (self.mode, self.ip, self.port)


def addressOf(mode, event):
    """The public address in one JSON line of the child, or None."""
    if mode == "map" and event.get("event") in ("mapped", "restored"):
        ip = event.get("externalAddress")
        if not ip:
            ip = next((m.get("externalAddress") for m in event.get("methods", []) if m.get("method") == event.get("method")), None)
        if ip:
            return Reachable("map", ip, int(event["externalPort"]))
    if mode == "expose" and event.get("event") == "exposed" and event.get("transport", "tcp") == "tcp":
        ip, port = parseAddress(event["address"])
        return Reachable("expose", ip, port)
    return None


class NatChild(object):
    def __init__(self, commands, env=None, on_reachable=None, on_lost=None, on_event=None, min_backoff=1.0, max_backoff=60.0):
        """commands: [(mode, argv)] in the order to try; on_reachable(Reachable), on_lost(mode) and
        on_event(mode, event) (every JSON line) are called from its greenlet."""
        self.log = logging.getLogger("NatTraversal")
        self.commands = commands
        self.env = env
        self.on_reachable = on_reachable or (lambda r: None)
        self.on_lost = on_lost or (lambda mode: None)
        self.on_event = on_event or (lambda mode, event: None)
        self.min_backoff = min_backoff
        self.max_backoff = max_backoff
        self.proc = None
        self.reachable = None
        self.starts = 0
        self.stopping = False
        self.greenlet = None

    def start(self):
        self.greenlet = gevent.spawn(self.supervise)
        return self

    def supervise(self):
        backoff = self.min_backoff
        while not self.stopping:
            started = time.time()
            for mode, argv in self.commands:
                if self.stopping:
                    return
                if self.runOne(mode, argv):
                    break  # it had an address and has now died: a new round
            if self.stopping:
                return
            if time.time() - started > 60:
                backoff = self.min_backoff
            self.log.info("nat child gone; next try in %.0f s" % backoff)
            gevent.sleep(backoff)
            backoff = min(backoff * 2, self.max_backoff)

    def runOne(self, mode, argv):
        """Runs one child until it exits. True if it reported an address."""
        try:
            proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, env=self.env, preexec_fn=dieWithParent)
        except OSError as err:
            self.log.error("cannot start %s (%s): %s; set --nat_bin to the nat command" % (argv[0], mode, err))
            return False
        self.proc = proc
        self.starts += 1
        self.log.info("nat child started (pid %s, mode %s): %s" % (proc.pid, mode, " ".join(argv)))
        had_address = False
        for raw in proc.stdout:
            line = raw.decode("utf8", "replace").strip()
            try:
                event = json.loads(line)
            except ValueError:
                self.log.debug("nat: %s" % line)
                continue
            if not isinstance(event, dict):
                continue
            self.log.info("nat child %s event: %s" % (proc.pid, line))
            self.on_event(mode, event)
            reachable = addressOf(mode, event)
            if reachable:
                had_address = True
                self.reachable = reachable
                self.on_reachable(reachable)
        code = proc.wait()
        self.proc = None
        self.log.info("nat child %s (mode %s) exited with code %s" % (proc.pid, mode, code))
        if had_address:
            self.reachable = None
            self.on_lost(mode)
        return had_address

    def stop(self, grace=5.0):
        self.stopping = True
        proc = self.proc
        if proc and proc.poll() is None:
            self.log.info("stopping nat child %s" % proc.pid)
            proc.terminate()
            try:
                proc.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if self.greenlet and not self.greenlet.dead and gevent.getcurrent() is not self.greenlet:
            self.greenlet.kill(block=False)

    def stopNow(self):
        """From a signal handler or atexit, where gevent may not run: terminate without waiting on the loop."""
        self.stopping = True
        proc = self.proc
        if proc and proc.poll() is None:
            try:
                os.kill(proc.pid, signal.SIGTERM)
            except OSError:
                pass
