#!/usr/bin/env bash
# Installs the Debian packages the integration tests need (real NAT lab in network
# namespaces, classic and RFC 5780 STUN classifiers, TURN server, a browser for the WebRTC
# test, a metrics scraper), only when missing.
# Idempotent: a second run installs nothing and does not run `apt-get update`.
# Runs non-interactively and starts no service: while it installs, a temporary
# /usr/sbin/policy-rc.d forbids invoke-rc.d from starting daemons, and afterwards any
# turnserver/stund that a package script started anyway is stopped; the coturn and stun
# services are disabled so that they do not start at boot either.
set -euo pipefail

export DEBIAN_FRONTEND=noninteractive

# package -> a command it provides (checked to decide whether it is missing)
declare -A PROVIDES=(
  [coturn]=turnserver            # turnserver, turnutils_natdiscovery, turnutils_stunclient ...
  [stun-client]=stun             # classic RFC 3489 client
  [stun-server]=stund            # classic RFC 3489 server (needs two addresses)
  [nftables]=nft                 # NAT recipes in the router namespace
  [iproute2]=ip                  # ip netns, veth
  [conntrack]=conntrack          # inspect/flush NAT mappings
  [procps]=pgrep                 # pgrep/sysctl, used by the lab and its tests
  [chromium]=chromium            # real browser for the WebRTC-through-TURN test (playwright-core)
  [miniupnpd-nftables]=miniupnpd # UPnP IGD / NAT-PMP / PCP router daemon (nftables backend; the binary only, no service)
  [systemd]=systemd-analyze       # systemd-analyze verify/security checks the service unit (no service is started)
  [prometheus]=prometheus        # a real scraper for the metrics test (the test starts its own; the service is disabled)
  [haproxy]=haproxy              # a real TCP load balancer sending PROXY v2 headers (the test starts its own)
  [curl]=curl                    # an independent SOCKS5 client for the expose outbound test (python3: a listener that never accepts)
  [redis-server]=redis-server   # shared state for the multi-node tests (each test starts its own, no persistence; the service is disabled)
  [python3]=python3
  [python3-gevent]=python3       # real ZeroNet for tests/zeronet (with python3-msgpack, -rsa, -socks, -base58 below)
  [python3-msgpack]=python3
  [python3-rsa]=python3
  [python3-socks]=python3
  [python3-base58]=python3       # ZeroNet's signatures (CryptBitcoin) need it
)

log() { printf '[install-test-deps] %s\n' "$*"; }

if [[ $(id -u) -ne 0 ]]; then
  log "must run as root (apt-get install, network namespaces)"; exit 1
fi

missing=()
for pkg in "${!PROVIDES[@]}"; do
  cmd=${PROVIDES[$pkg]}
  status=$(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null || true)
  if [[ $status == 'install ok installed' ]] && PATH="$PATH:/usr/sbin:/sbin" command -v "$cmd" >/dev/null 2>&1; then
    log "present: $pkg ($cmd)"
  else
    log "missing: $pkg ($cmd)"
    missing+=("$pkg")
  fi
done

if [[ ${#missing[@]} -eq 0 ]]; then
  log "nothing to install"
else
  # Forbid service start-up during the install (exit 101 = action forbidden), unless a
  # policy already exists (then it is left exactly as it was).
  policy=/usr/sbin/policy-rc.d
  made_policy=0
  if [[ ! -e $policy ]]; then
    printf '#!/bin/sh\nexit 101\n' >"$policy"
    chmod 755 "$policy"
    made_policy=1
    log "installed temporary $policy (no service starts)"
  fi
  cleanup_policy() { if [[ $made_policy -eq 1 ]]; then rm -f "$policy"; log "removed temporary $policy"; fi; }
  trap cleanup_policy EXIT

  log "apt-get update"
  apt-get update -q
  log "apt-get install -y --no-install-recommends ${missing[*]}"
  apt-get install -y -q --no-install-recommends \
    -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold \
    "${missing[@]}"

  # Keep the daemons from starting at the next boot too: tests start their own, and a system
  # coturn on 3478 would collide with the loopback servers the tests run.
  # (stun-server's sysv script is called "stun")
  for svc in coturn stun prometheus redis-server; do
    if [[ -e /lib/systemd/system/$svc.service ]] && command -v systemctl >/dev/null 2>&1; then
      log "disabling service $svc (systemd)"
      systemctl disable "$svc" >/dev/null 2>&1 || true
    fi
    if [[ -e /etc/init.d/$svc ]] && command -v update-rc.d >/dev/null 2>&1; then
      log "disabling service $svc (sysv)"
      update-rc.d "$svc" disable >/dev/null 2>&1 || true
    fi
  done
fi

# Whatever a maintainer script did, leave no daemon running: the tests start their own.
for svc in coturn stun prometheus redis-server; do
  if command -v systemctl >/dev/null 2>&1 && [[ -d /run/systemd/system ]]; then
    if systemctl is-active --quiet "$svc" 2>/dev/null; then
      log "stopping and disabling service $svc"
      systemctl stop "$svc" || true
      systemctl disable "$svc" >/dev/null 2>&1 || true
    fi
  fi
done
for daemon in turnserver stund prometheus redis-server; do
  # exact process name match only (-x), never a pattern over command lines
  for pid in $(pgrep -x "$daemon" || true); do
    # only daemons started by init (parent 1) as a system service, not a test's own
    if [[ $(ps -o ppid= -p "$pid" | tr -d ' ') == 1 ]]; then
      log "stopping service daemon $daemon (pid $pid)"
      kill "$pid" 2>/dev/null || true
    fi
  done
done

log "versions:"
{ nft --version; ip -V; conntrack --version; turnserver --version 2>/dev/null | head -n1 || true; chromium --version 2>/dev/null || true; prometheus --version 2>&1 | head -n1 || true; redis-server --version || true; } 2>&1 \
  | sed 's/^/  /'
log "done"
