/**
 * IPv6 in the kernel lab (issue 15, item 3): two LANs with global IPv6 addresses (2001:db8::/32)
 * behind routers that forward IPv6 through a stateful firewall and NAT IPv4 (ipv6-lab.ts).
 *
 * - The firewall itself, proven with node:dgram and nft counters (none of our code): a datagram
 *   from the internet to a client is dropped and counted; after the client has sent to that
 *   address and port, the reply comes in.
 * - ICE between two dual-stack clients selects a direct IPv6 pair (both firewalls drop
 *   unsolicited packets, so only simultaneous checks get through).
 * - ICE between an IPv4-only client and a dual-stack one selects an IPv4 pair.
 * - The rendezvous and TURN over IPv6: `nat-server` listening on an IPv6 address, peers that
 *   register over IPv6, and `--relay-only` through an IPv6 TURN allocation; ICE choosing an IPv6
 *   relay itself when a firewall drops UDP between the peers; `nat turn` relaying to an IPv6 peer
 *   through an IPv6 allocation (REQUESTED-ADDRESS-FAMILY).
 * - A tunnel (`nat expose`/`nat connect`) over the direct IPv6 pair carries 1 MiB each way.
 */
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { fileURLToPath } from 'node:url';
import { NAT_CLI, RENDEZVOUS, jsonLines, startIceServices, waitFor } from './ice-lab.js';
import { labAvailable, listLabNamespaces } from './netns.js';
import {
  IPV6_ADDRESSES,
  RENDEZVOUS6,
  UDP_ECHO,
  UDP_PROBE,
  createDualStackPairLab,
  startNatServer6,
  firewallCounter,
  type DualStackPairLab,
} from './ipv6-lab.js';

const TCP_TOOL = fileURLToPath(new URL('../tunnel/tcp-tool.mjs', import.meta.url));
const availability = labAvailable();
if (!availability.ok) console.warn(`[lab] IPv6 lab skipped: ${availability.reason}`);

const made: DualStackPairLab[] = [];
async function newLab(...args: Parameters<typeof createDualStackPairLab>): Promise<DualStackPairLab> {
  const lab = await createDualStackPairLab(...args);
  made.push(lab);
  return lab;
}

/** What `nat ping --json` prints (the fields this suite reads). */
interface PingJson {
  path: 'direct' | 'relay';
  localCandidate: { type: string; address: string };
  remoteCandidate: { type: string; address: string };
  connectMs: number;
  rttMs: number[];
}

/**
 * Runs `nat ping ID --json` behind NAT A (3 pings: the tests ask for at least one answer, as the
 * ICE matrix does; a ping sent at once after connecting is now and then not answered), and returns its JSON line (throws with its output otherwise).
 */
async function ping(lab: DualStackPairLab, id: string, rendezvous: string, extra: readonly string[] = []): Promise<PingJson> {
  const r = await lab.exec(
    'clientA',
    [process.execPath, NAT_CLI, 'ping', id, '--rendezvous', rendezvous, '--json', '--count', '3', '--timeout', '20000', ...extra],
    {
      timeoutMs: 40_000,
    },
  );
  const line = r.stdout.split('\n').find((l) => l.startsWith('{'));
  if (r.code !== 0 || line === undefined) throw new Error(`nat ping exited ${r.code}:\n${r.stdout}\n${r.stderr}`);
  return JSON.parse(line) as PingJson;
}

/** The IP of an `ip:port` or `[ipv6]:port` transport address, as `nat ping --json` prints them. */
function ipOf(transport: string): string {
  const m = /^\[([^\]]+)\]:\d+$/.exec(transport) ?? /^([^:]+):\d+$/.exec(transport);
  if (m === null) throw new Error(`not a transport address: ${transport}`);
  return m[1]!;
}
const isV6 = (transport: string): boolean => ipOf(transport).includes(':');

describe.skipIf(!availability.ok)('IPv6 behind stateful firewalls (kernel lab)', () => {
  afterAll(async () => {
    const ids = made.map((l) => l.id);
    await Promise.all(made.map((l) => l.destroy()));
    expect(listLabNamespaces().filter((n) => ids.some((id) => n.startsWith(id)))).toEqual([]);
  });

  it('the router drops unsolicited inbound IPv6 and lets replies in (node:dgram, nft counters)', { timeout: 60_000 }, async () => {
    const lab = await newLab();
    const b = lab.ipv6.b!;
    const droppedBefore = await firewallCounter(lab, 'routerB', 'inbound_udp_dropped');
    // Unsolicited: client B listens, the internet sends to it.
    const recv = lab.spawn('clientB', [process.execPath, '-e', UDP_PROBE, 'recv', '40000', '3000']);
    await waitFor(
      () => recv.output().includes('listening'),
      10_000,
      'receiver',
      () => recv.output(),
    );
    await lab.exec('server', [process.execPath, '-e', UDP_PROBE, 'send', b, '40000', '5', '41000', lab.ipv6.server.primary], { check: true });
    await recv.exited;
    expect(recv.output()).not.toContain('"from"');
    expect((await firewallCounter(lab, 'routerB', 'inbound_udp_dropped')) - droppedBefore).toBeGreaterThanOrEqual(5);

    // Solicited: client B first sends to the server's port 41000; the server's datagrams from there come in.
    const establishedBefore = await firewallCounter(lab, 'routerB', 'inbound_established');
    const recv2 = lab.spawn('clientB', [process.execPath, '-e', UDP_PROBE, 'recv', '40000', '3000', lab.ipv6.server.primary, '41000']);
    await waitFor(
      () => recv2.output().includes('listening'),
      10_000,
      'receiver',
      () => recv2.output(),
    );
    await new Promise((r) => setTimeout(r, 300));
    await lab.exec('server', [process.execPath, '-e', UDP_PROBE, 'send', b, '40000', '3', '41000', lab.ipv6.server.primary], { check: true });
    await recv2.exited;
    expect(recv2.output()).toContain(`"from":"${lab.ipv6.server.primary}","port":41000`);
    expect((await firewallCounter(lab, 'routerB', 'inbound_established')) - establishedBefore).toBeGreaterThanOrEqual(3);
  });

  it('selects a direct IPv6 pair between two dual-stack peers behind stateful firewalls', { timeout: 120_000 }, async () => {
    const lab = await newLab();
    const { id, listener } = await startIceServices(lab);
    const before = await firewallCounter(lab, 'routerB', 'inbound_established');
    const p = await ping(lab, id, RENDEZVOUS);
    console.log(
      `[ipv6] dual-stack <-> dual-stack: ${JSON.stringify({ path: p.path, local: p.localCandidate, remote: p.remoteCandidate, connectMs: p.connectMs, rttMs: p.rttMs })}`,
    );
    expect(p.path, listener.output()).toBe('direct');
    expect([p.localCandidate.type, ipOf(p.localCandidate.address)]).toEqual(['host', lab.ipv6.a]);
    expect([p.remoteCandidate.type, ipOf(p.remoteCandidate.address)]).toEqual(['host', lab.ipv6.b]);
    expect(p.rttMs.length).toBeGreaterThan(0);
    // The checks and pings came in through B's firewall as replies to what B sent.
    const counters = {
      a: { established: await firewallCounter(lab, 'routerA', 'inbound_established'), dropped: await firewallCounter(lab, 'routerA', 'inbound_udp_dropped') },
      b: { established: await firewallCounter(lab, 'routerB', 'inbound_established'), dropped: await firewallCounter(lab, 'routerB', 'inbound_udp_dropped') },
    };
    console.log(`[ipv6] firewall counters (UDP in as replies / unsolicited UDP dropped): ${JSON.stringify(counters)}`);
    expect(counters.b.established).toBeGreaterThan(before);
  });

  it('selects an IPv4 pair between an IPv4-only peer and a dual-stack one', { timeout: 120_000 }, async () => {
    const lab = await newLab({ ipv6A: false });
    const { id, listener } = await startIceServices(lab);
    const p = await ping(lab, id, RENDEZVOUS);
    console.log(
      `[ipv6] IPv4-only <-> dual-stack: ${JSON.stringify({ path: p.path, local: p.localCandidate, remote: p.remoteCandidate, connectMs: p.connectMs, rttMs: p.rttMs })}`,
    );
    expect(p.path, listener.output()).toBe('direct');
    expect(isV6(p.localCandidate.address)).toBe(false);
    expect(isV6(p.remoteCandidate.address)).toBe(false);
    expect(p.rttMs.length).toBeGreaterThan(0);
  });

  it('registers over IPv6 with a rendezvous on an IPv6 address and relays through an IPv6 TURN allocation', { timeout: 120_000 }, async () => {
    const lab = await newLab();
    const server = await startNatServer6(lab);
    const listener = lab.spawn('clientB', [
      process.execPath,
      NAT_CLI,
      'listen',
      '--rendezvous',
      RENDEZVOUS6,
      '--json',
      '--identity',
      join(lab.tmpDir, 'b.key'),
    ]);
    await waitFor(
      () => /^\{"id":/m.test(listener.output()) || listener.hasExited(),
      20_000,
      'nat listen id',
      () => listener.output(),
    );
    const { id } = JSON.parse(
      listener
        .output()
        .split('\n')
        .find((l) => l.startsWith('{"id":'))!,
    ) as { id: string };
    // The registration is a TCP connection from B's IPv6 address to [2001:db8:ffff::1]:8080 (ss, not our code).
    const ss = await lab.exec('server', ['ss', '-Htn', 'state', 'established', '( sport = :8080 )'], { check: true });
    expect(ss.stdout, ss.stdout).toContain(`[${lab.ipv6.b}]:`);

    const p = await ping(lab, id, RENDEZVOUS6, ['--relay-only']);
    console.log(
      `[ipv6] relay-only over IPv6 TURN: ${JSON.stringify({ path: p.path, local: p.localCandidate, remote: p.remoteCandidate, connectMs: p.connectMs, rttMs: p.rttMs })}`,
    );
    expect(p.path, `${listener.output()}\n${server.output()}`).toBe('relay');
    expect([p.localCandidate.type, ipOf(p.localCandidate.address)]).toEqual(['relay', lab.ipv6.server.primary]);
    expect(isV6(p.remoteCandidate.address)).toBe(true);
    expect(p.rttMs.length).toBeGreaterThan(0);
  });

  it('nat turn allocates an IPv6 relayed address over IPv6 and relays to an IPv6 peer (REQUESTED-ADDRESS-FAMILY)', { timeout: 90_000 }, async () => {
    const lab = await newLab();
    await startNatServer6(lab);
    // An echo on the internet side (node:dgram), at the server host's second IPv6 address.
    const echo = lab.spawn('server', [process.execPath, '-e', UDP_ECHO, lab.ipv6.server.secondary, '47000', '60000']);
    await waitFor(
      () => echo.output().includes('listening'),
      10_000,
      'echo',
      () => echo.output(),
    );
    const cred = await lab.exec('clientA', [process.execPath, NAT_CLI, 'turn', 'credentials', '--secret', 'lab-secret', '--user', 'a', '--json'], {
      check: true,
    });
    const { username, password } = JSON.parse(cred.stdout) as { username: string; password: string };
    const server = `[${lab.ipv6.server.primary}]:3478`;
    const peer = `[${lab.ipv6.server.secondary}]:47000`;
    const r = await lab.exec(
      'clientA',
      [process.execPath, NAT_CLI, 'turn', '--server', server, '--user', `${username}:${password}`, '--peer', peer, '--echo', '--count', '3', '--json'],
      {
        timeoutMs: 30_000,
      },
    );
    expect(r.code, `${r.stdout}\n${r.stderr}`).toBe(0);
    const out = JSON.parse(r.stdout.slice(r.stdout.indexOf('{'))) as { relayedAddress: string; received: number };
    console.log(`[ipv6] nat turn over IPv6: ${JSON.stringify(out)}`);
    expect(out.received).toBe(3);
    expect(ipOf(out.relayedAddress)).toBe(lab.ipv6.server.primary);
    // The echo saw the datagrams come from the IPv6 relayed address (node:dgram's view, not ours).
    expect(echo.output()).toContain(`"from":"${lab.ipv6.server.primary}","port":${out.relayedAddress.split(']:')[1]}`);
  });

  it('relays over IPv6 when a firewall drops all UDP between the two peers (no --relay-only)', { timeout: 120_000 }, async () => {
    const lab = await newLab();
    // Router A drops UDP toward B's side, IPv6 (B's LAN) and IPv4 (B's NAT): only the server is reachable.
    await lab.exec('routerA', ['nft', `insert rule ip6 fw6 forward ip6 daddr ${IPV6_ADDRESSES.b.lanNet} meta l4proto udp drop`], { check: true });
    await lab.exec('routerA', ['nft', `insert rule ip natlab forward ip daddr ${lab.b.publicAddress} meta l4proto udp drop`], { check: true });
    const server = await startNatServer6(lab);
    const listener = lab.spawn('clientB', [
      process.execPath,
      NAT_CLI,
      'listen',
      '--rendezvous',
      RENDEZVOUS6,
      '--json',
      '--identity',
      join(lab.tmpDir, 'b.key'),
    ]);
    await waitFor(
      () => /^\{"id":/m.test(listener.output()) || listener.hasExited(),
      20_000,
      'nat listen id',
      () => listener.output(),
    );
    const { id } = JSON.parse(
      listener
        .output()
        .split('\n')
        .find((l) => l.startsWith('{"id":'))!,
    ) as { id: string };
    const p = await ping(lab, id, RENDEZVOUS6);
    console.log(
      `[ipv6] UDP between the peers dropped: ${JSON.stringify({ path: p.path, local: p.localCandidate, remote: p.remoteCandidate, connectMs: p.connectMs, rttMs: p.rttMs })}`,
    );
    expect(p.path, `${listener.output()}\n${server.output()}`).toBe('relay');
    // the relayed side of the pair is an IPv6 relayed address, the other end IPv6 too
    const relayEnd = p.localCandidate.type === 'relay' ? p.localCandidate : p.remoteCandidate;
    expect(ipOf(relayEnd.address)).toBe(lab.ipv6.server.primary);
    expect(isV6(p.localCandidate.address) && isV6(p.remoteCandidate.address)).toBe(true);
    expect(p.rttMs.length).toBeGreaterThan(0);
  });

  it('carries a tunnel (nat expose / nat connect) over the direct IPv6 pair, 1 MiB each way intact', { timeout: 120_000 }, async () => {
    const lab = await newLab();
    await startIceServices(lab);
    const service = lab.spawn('clientB', [process.execPath, TCP_TOOL, 'echo', '15461']);
    await waitFor(
      () => /serving/.test(service.output()) || service.hasExited(),
      10_000,
      'the echo service',
      () => service.output(),
    );
    const expose = lab.spawn('clientB', [
      ...[process.execPath, NAT_CLI, 'expose', '127.0.0.1:15461', '--name', 'v6-echo', '--allow-any', '--rendezvous', RENDEZVOUS],
      ...['--identity', join(lab.tmpDir, 'expose.key'), '--json'],
    ]);
    await waitFor(
      () => jsonLines(expose).some((e) => e.event === 'ready') || expose.hasExited(),
      20_000,
      'nat expose ready',
      () => expose.output(),
    );
    const connect = lab.spawn('clientA', [
      ...[process.execPath, NAT_CLI, 'connect', 'v6-echo', '--listen', '127.0.0.1:15462', '--rendezvous', RENDEZVOUS],
      ...['--identity', join(lab.tmpDir, 'connect.key'), '--json'],
    ]);
    await waitFor(
      () => jsonLines(connect).some((e) => e.event === 'listening') || connect.hasExited(),
      20_000,
      'nat connect listening',
      () => connect.output(),
    );
    const r = await lab.exec('clientA', [process.execPath, TCP_TOOL, 'roundtrip', '15462', String(1 << 20)], { timeoutMs: 40_000 });
    const echo = JSON.parse(r.stdout.split('\n').find((l) => l.startsWith('{')) ?? '{}') as { ok?: boolean; received?: number };
    const paths = jsonLines(connect).filter((e) => e.event === 'path');
    const routes = jsonLines(connect)
      .filter((e) => (e.event === 'link' || e.event === 'route') && typeof e.route === 'string')
      .map((e) => String(e.route));
    console.log(`[ipv6] tunnel over IPv6: ${JSON.stringify({ echo, routes, lastPath: paths.at(-1) })}`);
    expect(echo, `${r.stderr}\n${connect.output()}\n${expose.output()}`).toMatchObject({ ok: true, received: 1 << 20 });
    expect(paths.at(-1), connect.output()).toMatchObject({ path: 'direct' });
    expect(JSON.stringify(paths.at(-1))).toContain(lab.ipv6.b!);
  });
});
