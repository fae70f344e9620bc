/**
 * miniupnpd (UPnP IGD v2, NAT-PMP and PCP) in a lab router, and a double-NAT lab for the
 * port-mapping tests.
 *
 * miniupnpd (Debian's nftables build) writes its mappings into its own nftables table
 * `inet miniupnpd`, whose base chains jump to the chains it fills (`miniupnpd` for filter,
 * `prerouting_miniupnpd` / `postrouting_miniupnpd` for NAT). It refuses to map while its WAN
 * address is in a reserved range (all of the lab's are, RFC 5737 / RFC 2544) unless
 * `ext_perform_stun=yes` and a STUN server with two addresses (coturn here) shows it that no
 * NAT stands between it and that server; the router's input chain must then let that server's
 * answers in, as every answer of an RFC 5780 test comes from another address or port.
 *
 * The double-NAT lab puts the LAN behind two routers:
 *
 * ```
 *   server ns  inet0 203.0.113.1/24, 203.0.113.2/24 (coturn, the client's STUN server)
 *      |
 *   outer ns   wan0 203.0.113.254/24  (NAT)   lan0 198.18.100.1/24, 198.18.100.3/24 (coturn for miniupnpd)
 *      |
 *   inner ns   wan0 198.18.100.2/24   (NAT + miniupnpd)   lan0 198.18.0.1/24
 *      |
 *   client ns  eth0 198.18.0.2/24
 * ```
 *
 * miniupnpd on the inner router learns 198.18.100.2 as its external address from the coturn
 * on the outer router's LAN side, so it maps happily, and every mapping it makes is useless
 * from the internet: what `nat detect` must call double NAT.
 */
import { randomBytes } from 'node:crypto';
import { accessSync, constants, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { routerRuleset, type Behaviour } from './recipes.js';
import { LAB_PREFIX, openNamespaceSet, veth, type ExecOptions, type ExecResult, type LabProcess } from './netns.js';
import { waitForUdpListeners } from './classifiers.js';
import type { Lab } from './netns.js';
import { startNatServer } from './ice-lab.js';
import { PAIR_ADDRESSES, createPairLab, type PairLab } from './pair.js';

/** The miniupnpd binary (package miniupnpd-nftables). */
export const MINIUPNPD = '/usr/sbin/miniupnpd';

/** Why miniupnpd cannot be used here, or that it can. */
export function miniupnpdAvailable(): { ok: true } | { ok: false; reason: string } {
  try {
    accessSync(MINIUPNPD, constants.X_OK);
  } catch {
    return { ok: false, reason: `${MINIUPNPD} is missing (run scripts/install-test-deps.sh)` };
  }
  return { ok: true };
}

/** What the miniupnpd helpers need of a lab: commands in namespaces and a temporary directory. */
export interface NamespaceHost {
  readonly tmpDir: string;
  exec(ns: string, argv: readonly string[], opts?: ExecOptions): Promise<ExecResult>;
  spawn(ns: string, argv: readonly string[]): LabProcess;
}

/** Options of {@link startMiniupnpd}. */
export interface MiniupnpdOptions {
  /** The router namespace. */
  readonly ns: string;
  readonly extIf: string;
  readonly lanIf: string;
  /** The LAN prefix allowed to map (e.g. 198.18.0.0/24). */
  readonly lanPrefix: string;
  /** STUN server with an alternate address, as miniupnpd's ext_stun_host. */
  readonly stunHost: string;
  readonly stunPort?: number;
  /** Fixed HTTP port, so that a restarted daemon keeps its control URLs (default 5555). */
  readonly httpPort?: number;
  /** Smallest lease granted, seconds (default 1, so that tests can watch renewals). */
  readonly minLifetime?: number;
}

/** A running miniupnpd. */
export interface Miniupnpd {
  readonly process: LabProcess;
  readonly httpPort: number;
  /** Stops it (SIGTERM). */
  stop(): Promise<void>;
  /**
   * A router reboot: stops the daemon, forgets every mapping (flushes its chains, as a reboot
   * empties the kernel's tables), starts it again; its epoch starts from 0.
   */
  reboot(): Promise<Miniupnpd>;
  /** The rules of its NAT chain (one line per mapping). */
  natRules(): Promise<string[]>;
}

/** Creates miniupnpd's nftables table in the router namespace (what Debian's nft_init.sh does). */
export async function installMiniupnpdTables(host: NamespaceHost, ns: string): Promise<void> {
  const ruleset = [
    'table inet miniupnpd {',
    '  chain forward {',
    '    type filter hook forward priority filter; policy accept;',
    '    jump miniupnpd',
    '  }',
    '  chain miniupnpd {',
    '  }',
    '  chain prerouting {',
    '    type nat hook prerouting priority dstnat; policy accept;',
    '    jump prerouting_miniupnpd',
    '  }',
    '  chain postrouting {',
    '    type nat hook postrouting priority srcnat; policy accept;',
    '    jump postrouting_miniupnpd',
    '  }',
    '  chain prerouting_miniupnpd {',
    '  }',
    '  chain postrouting_miniupnpd {',
    '  }',
    '}',
    '',
  ].join('\n');
  await host.exec(ns, ['nft', '-f', '-'], { input: ruleset, check: true });
}

/** Lets the STUN server's answers (from both its addresses and ports) in on the router's WAN. */
export async function allowStunAnswers(host: NamespaceHost, ns: string, wanIf: string, from: readonly string[], port = 3478): Promise<void> {
  await host.exec(ns, ['nft', `insert rule inet natlab input iifname "${wanIf}" ip saddr { ${from.join(', ')} } udp sport { ${port}, ${port + 1} } accept`], {
    check: true,
  });
}

/**
 * Starts miniupnpd in the foreground (-d) with UPnP IGD, NAT-PMP and PCP on `lanIf`, secure
 * mode (a client maps only to itself), STUN-checked external address, and no lease file (a
 * restart forgets everything). Resolves once it listens for NAT-PMP/PCP and HTTP.
 */
export async function startMiniupnpd(host: NamespaceHost, o: MiniupnpdOptions): Promise<Miniupnpd> {
  const httpPort = o.httpPort ?? 5555;
  const tag = randomBytes(3).toString('hex');
  const conf = join(host.tmpDir, `miniupnpd-${tag}.conf`);
  writeFileSync(
    conf,
    [
      `ext_ifname=${o.extIf}`,
      `listening_ip=${o.lanIf}`,
      `http_port=${httpPort}`,
      'enable_natpmp=yes',
      'enable_upnp=yes',
      'secure_mode=yes',
      'ext_perform_stun=yes',
      `ext_stun_host=${o.stunHost}`,
      `ext_stun_port=${o.stunPort ?? 3478}`,
      'upnp_table_name=miniupnpd',
      'upnp_nat_table_name=miniupnpd',
      'upnp_forward_chain=miniupnpd',
      'upnp_nat_chain=prerouting_miniupnpd',
      'upnp_nat_postrouting_chain=postrouting_miniupnpd',
      // The epoch (NAT-PMP/PCP) counts from the daemon's start, so a restart resets it.
      'system_uptime=no',
      `min_lifetime=${o.minLifetime ?? 1}`,
      'max_lifetime=86400',
      `uuid=3a5a0cb4-6b6d-4f7c-9d5e-${randomBytes(6).toString('hex')}`,
      'notify_interval=60',
      `allow 1-65535 ${o.lanPrefix} 1-65535`,
      'deny 0-65535 0.0.0.0/0 0-65535',
      '',
    ].join('\n'),
  );
  const argv = [MINIUPNPD, '-f', conf, '-d', '-P', join(host.tmpDir, `miniupnpd-${tag}.pid`)];
  const proc = host.spawn(o.ns, argv);
  const deadline = Date.now() + 10_000;
  while (!/Listening for NAT-PMP\/PCP traffic/.test(proc.output()) || !/HTTP listening on port/.test(proc.output())) {
    if (proc.hasExited() || Date.now() > deadline) {
      await proc.stop();
      throw new Error(`miniupnpd did not start: ${proc.hasExited() ? 'exited' : 'timeout'}\n${proc.output().slice(-3000)}`);
    }
    if (/Port forwarding is now disabled|Port forwarding is impossible/.test(proc.output())) {
      await proc.stop();
      throw new Error(`miniupnpd refuses to forward ports:\n${proc.output().slice(-3000)}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  const daemon: Miniupnpd = {
    process: proc,
    httpPort,
    stop: () => proc.stop(),
    async reboot() {
      await proc.stop();
      for (const chain of ['miniupnpd', 'prerouting_miniupnpd', 'postrouting_miniupnpd']) {
        await host.exec(o.ns, ['nft', 'flush', 'chain', 'inet', 'miniupnpd', chain], { check: true });
      }
      return startMiniupnpd(host, o);
    },
    async natRules() {
      const r = await host.exec(o.ns, ['nft', 'list', 'chain', 'inet', 'miniupnpd', 'prerouting_miniupnpd'], { check: true });
      return r.stdout
        .split('\n')
        .map((l) => l.trim())
        .filter((l) => l.includes('dnat'));
    },
  };
  return daemon;
}

/** Starts coturn as a STUN-only server on two addresses of `ns` (ports 3478/3479). */
export async function startStunIn(host: NamespaceHost, ns: string, primary: string, secondary: string): Promise<LabProcess> {
  const argv = [
    'turnserver',
    '-n',
    '--stun-only',
    '--no-auth',
    '--no-cli',
    '--no-tls',
    '--no-dtls',
    '--listening-ip',
    primary,
    '--listening-ip',
    secondary,
    '--listening-port',
    '3478',
    '--alt-listening-port',
    '3479',
    '--log-file',
    'stdout',
    '--simple-log',
    '--pidfile',
    join(host.tmpDir, `turnserver-${ns.slice(-3)}.pid`),
    '--userdb',
    join(host.tmpDir, `turndb-${ns.slice(-3)}`),
  ];
  const proc = host.spawn(ns, argv);
  const v4 = (address: string, port: number) => ({ family: 'IPv4' as const, address, port });
  await waitForUdpListeners(
    host as unknown as Lab, // only its exec(ns, argv) is used
    ns,
    [v4(primary, 3478), v4(primary, 3479), v4(secondary, 3478), v4(secondary, 3479)],
    proc,
  );
  return proc;
}

/** The double-NAT lab's fixed addresses. */
export const DOUBLE_NAT_ADDRESSES = {
  serverPrimary: '203.0.113.1',
  serverSecondary: '203.0.113.2',
  outerWan: '203.0.113.254',
  outerLan: '198.18.100.1',
  outerLanStun: '198.18.100.3',
  innerWan: '198.18.100.2',
  innerLan: '198.18.0.1',
  client: '198.18.0.2',
} as const;

/** A built double-NAT lab. */
export interface DoubleNatLab extends NamespaceHost {
  readonly id: string;
  readonly ns: { readonly server: string; readonly outer: string; readonly inner: string; readonly client: string };
  readonly namespaces: readonly string[];
  destroy(): Promise<void>;
}

let counter = 0;

/** Builds the double-NAT lab (both routers port-restricted cones). */
export async function createDoubleNatLab(): Promise<DoubleNatLab> {
  counter += 1;
  const id = `${LAB_PREFIX}${process.pid}-d${counter}${randomBytes(2).toString('hex')}`;
  const ns = { server: `${id}-s`, outer: `${id}-ro`, inner: `${id}-ri`, client: `${id}-c` };
  const set = openNamespaceSet(id, { label: 'double-NAT lab' });
  const A = DOUBLE_NAT_ADDRESSES;
  const lab: DoubleNatLab = {
    id,
    ns,
    namespaces: Object.values(ns),
    tmpDir: set.tmpDir,
    exec: (n, argv, opts) => set.exec(n, argv, opts),
    spawn: (n, argv) => set.spawn(n, argv),
    destroy: () => set.destroy(),
  };
  try {
    await set.build(lab.namespaces, [
      veth('r0', ns.server, 'wan0', ns.outer),
      veth('lan0', ns.outer, 'wan0', ns.inner),
      veth('lan0', ns.inner, 'eth0', ns.client),
    ]);
    await Promise.all([
      set.batch(ns.server, [
        'link set lo up',
        'link add inet0 type bridge',
        'link set r0 master inet0',
        `addr add ${A.serverPrimary}/24 dev inet0`,
        `addr add ${A.serverSecondary}/24 dev inet0`,
        'link set r0 up',
        'link set inet0 up',
      ]),
      set.batch(ns.outer, [
        'link set lo up',
        `addr add ${A.outerWan}/24 dev wan0`,
        `addr add ${A.outerLan}/24 dev lan0`,
        `addr add ${A.outerLanStun}/24 dev lan0`,
        'link set wan0 up',
        'link set lan0 up',
      ]),
      set.batch(ns.inner, [
        'link set lo up',
        `addr add ${A.innerWan}/24 dev wan0`,
        `addr add ${A.innerLan}/24 dev lan0`,
        'link set wan0 up',
        'link set lan0 up',
        `route add default via ${A.outerLan}`,
      ]),
      set.batch(ns.client, ['link set lo up', `addr add ${A.client}/24 dev eth0`, 'link set eth0 up', `route add default via ${A.innerLan}`]),
    ]);
    const recipe = (publicAddress: string, hostAddress: string): string =>
      routerRuleset('port-restricted-cone', { wanIf: 'wan0', lanIf: 'lan0', publicAddress, hostAddress, filterTimeoutSeconds: 120 });
    await set.must(['ip', 'netns', 'exec', ns.outer, 'nft', '-f', '-'], recipe(A.outerWan, A.innerWan));
    await set.must(['ip', 'netns', 'exec', ns.inner, 'nft', '-f', '-'], recipe(A.innerWan, A.client));
    for (const r of [ns.outer, ns.inner]) await set.must(['ip', 'netns', 'exec', r, 'sysctl', '-q', '-w', 'net.ipv4.ip_forward=1']);
    return lab;
  } catch (e) {
    await set.destroy();
    throw e;
  }
}

/**
 * A UDP and TCP echo service (node, no dependencies) for the LAN host: `node -e ECHO_SERVICE
 * PORT...` answers every datagram and every TCP line on each port with "echo:PORT:" + the data,
 * and prints "ready" once every socket is bound.
 */
export const ECHO_SERVICE = `
const dgram = require('node:dgram'); const net = require('node:net');
const ports = process.argv.slice(1).map(Number); let bound = 0;
const ready = () => { if (++bound === ports.length * 2) console.log('ready'); };
for (const p of ports) {
  const tag = Buffer.from('echo:' + p + ':');
  const u = dgram.createSocket('udp4'); u.on('message', (m, r) => u.send(Buffer.concat([tag, m]), r.port, r.address)); u.bind(p, ready);
  net.createServer((c) => c.on('data', (d) => { c.write(Buffer.concat([tag, d])); c.end(); }).on('error', () => {})).listen(p, ready);
}`;

/**
 * A one-shot prober for the internet side: `node -e PROBE udp|tcp HOST PORT PAYLOAD [TIMEOUT_MS]`
 * prints the echo and exits 0, or exits 1 when nothing comes back in time.
 */
export const PROBE = `
const [proto, host, port, payload, t] = process.argv.slice(1); const timeout = Number(t || 1500);
const done = (ok, s) => { console.log(s); process.exit(ok ? 0 : 1); };
setTimeout(() => done(false, 'timeout'), timeout);
if (proto === 'udp') {
  const s = require('node:dgram').createSocket('udp4');
  s.on('message', (m) => done(true, m.toString()));
  const send = () => s.send(payload, Number(port), host); send(); setInterval(send, 250);
} else {
  const c = require('node:net').connect(Number(port), host, () => c.write(payload));
  c.on('data', (d) => done(true, d.toString())); c.on('error', (e) => done(false, e.code));
}`;

/**
 * The {@link NamespaceHost} of a lab whose `exec`/`spawn` take role names (such as the pair lab
 * of pair.ts, whose roles are `server`, `routerA`, ...): namespace names are mapped back to
 * their roles, so that the miniupnpd helpers run in any of its namespaces.
 */
export function namespaceHostByRole<R extends string>(
  lab: {
    readonly tmpDir: string;
    exec(ref: R, argv: readonly string[], opts?: ExecOptions): Promise<ExecResult>;
    spawn(ref: R, argv: readonly string[]): LabProcess;
  },
  roles: Readonly<Record<R, string>>,
): NamespaceHost {
  const role = (ns: string): R => {
    const r = (Object.keys(roles) as R[]).find((k) => roles[k] === ns);
    if (r === undefined) throw new Error(`namespace ${ns} is not one of this lab's`);
    return r;
  };
  return { tmpDir: lab.tmpDir, exec: (ns, argv, opts) => lab.exec(role(ns), argv, opts), spawn: (ns, argv) => lab.spawn(role(ns), argv) };
}

/**
 * miniupnpd (PCP, NAT-PMP, UPnP IGD) on router B of a pair lab (tests/lab/pair.ts), mapping for
 * client B's LAN. Start nat-server on the lab's server first: miniupnpd checks with its STUN
 * (RFC 5780 answers from both addresses) that its WAN address is public. Router B's own traffic
 * is no longer translated, as the symmetric recipe's `snat fully-random` would also randomize
 * the router's own source ports and miniupnpd would take itself for a host behind a NAT.
 * Stop the daemon before destroying the lab.
 */
export async function startPairMiniupnpd(lab: PairLab): Promise<Miniupnpd> {
  const host = namespaceHostByRole(lab, {
    server: lab.server.ns,
    routerA: lab.a.router.ns,
    clientA: lab.a.client.ns,
    routerB: lab.b.router.ns,
    clientB: lab.b.client.ns,
  });
  const router = lab.b.router.ns;
  await allowStunAnswers(host, router, 'wan0', [lab.server.primary, lab.server.secondary]);
  await host.exec(router, ['nft', `insert rule inet natlab postrouting ip saddr ${lab.b.router.wan} accept`], { check: true });
  await installMiniupnpdTables(host, router);
  const b = PAIR_ADDRESSES.b;
  const lanPrefix = `${b.routerLan.split('.').slice(0, 3).join('.')}.0/${b.lanPrefix}`;
  return startMiniupnpd(host, { ns: router, extIf: 'wan0', lanIf: 'lan0', lanPrefix, stunHost: lab.server.primary });
}

/** `portMapping` of the `nat` commands' --json output (apps/cli/src/commands/ping.ts), one mapping or why there is none. */
export interface PortMapReport {
  gateway: string | null;
  method: string | null;
  internalAddress: string | null;
  externalAddress: string | null;
  error: string | null;
  message: string | null;
}

/** A pair lab whose router B maps ports: {@link createMappedPairLab}. */
export interface MappedPairLab {
  readonly lab: PairLab;
  /** nat-server (STUN, TURN, rendezvous) on the lab's server. */
  readonly server: LabProcess;
  /** miniupnpd on router B. */
  readonly daemon: Miniupnpd;
  /** Stops miniupnpd and destroys the lab (idempotent). */
  destroy(): Promise<void>;
}

/**
 * A pair lab of the given behaviours (default: symmetric on both sides, the pair ICE otherwise
 * relays) with nat-server on the internet side and miniupnpd on router B; everything is torn
 * down again when a step fails.
 */
export async function createMappedPairLab(a: Behaviour = 'symmetric', b: Behaviour = 'symmetric'): Promise<MappedPairLab> {
  const lab = await createPairLab({ a, b });
  let daemon: Miniupnpd | undefined;
  const destroy = async (): Promise<void> => {
    await daemon?.stop();
    await lab.destroy();
  };
  try {
    // two addresses: miniupnpd's STUN check of its WAN address needs RFC 5780 answers
    const server = await startNatServer(lab, undefined, { addresses: 2 });
    daemon = await startPairMiniupnpd(lab);
    return { lab, server, daemon, destroy };
  } catch (e) {
    await destroy();
    throw e;
  }
}
