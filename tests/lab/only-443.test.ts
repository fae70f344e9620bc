/**
 * One port for restrictive networks (issue 17 item 5), across real kernel NATs: peer A's router
 * lets only TCP 443 out (nftables in router A's namespace drops every other packet from its
 * LAN, UDP included, and counts them). With one URL, the rendezvous `wss://SERVER:443/`, A
 * registers, gets relay credentials whose `turns:` URI points at the same port 443, and pings a
 * peer behind another NAT through the relay. That UDP was really blocked is shown twice: the
 * router's counter of dropped UDP packets, and coturn's independent STUN client, which gets no
 * answer from A's namespace while it gets one from B's.
 */
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { NAT_CLI, NAT_SERVER, waitFor } from './ice-lab.js';
import { labAvailable } from './netns.js';
import type { PingJson } from './one-address-pairs.js';
import { PAIR_ADDRESSES, type PairLab, createPairLab } from './pair.js';
import { writeCert } from '../oneport/helpers.js';

const SERVER = PAIR_ADDRESSES.serverPrimary;
const ONE_URL = `wss://${SERVER}:443/`;
const A_LAN = `${PAIR_ADDRESSES.a.clientLan.split('.').slice(0, 3).join('.')}.0/${PAIR_ADDRESSES.a.lanPrefix}`;

/** Router A: from its LAN only TCP to port 443 goes out; the rest is dropped and counted. */
const ONLY_443 = `table inet only443 {
  counter tls_out { }
  counter udp_dropped { }
  counter other_dropped { }
  chain forward {
    type filter hook forward priority -10; policy accept;
    ip saddr ${A_LAN} tcp dport 443 counter name tls_out accept
    ip saddr ${A_LAN} meta l4proto udp counter name udp_dropped drop
    ip saddr ${A_LAN} counter name other_dropped drop
  }
}
`;

/** The packet count of one of router A's counters. */
async function counter(lab: PairLab, name: string): Promise<number> {
  const r = await lab.exec('routerA', ['nft', 'list', 'counter', 'inet', 'only443', name], { check: true });
  const m = /packets (\d+)/.exec(r.stdout);
  if (!m) throw new Error(`no packet count in: ${r.stdout}`);
  return Number(m[1]);
}

let lab: PairLab | undefined;
afterEach(async () => {
  await lab?.destroy();
  lab = undefined;
});

describe('a peer whose network lets only TCP 443 out', () => {
  it('registers, gets relay credentials and relays to a peer behind another NAT, all with one wss: URL on 443', { timeout: 240_000 }, async () => {
    expect(labAvailable()).toEqual({ ok: true });
    lab = await createPairLab({ a: 'port-restricted-cone', b: 'port-restricted-cone' });
    await lab.exec('routerA', ['nft', '-f', '-'], { input: ONLY_443, check: true });
    const cert = await writeCert(lab.tmpDir, [SERVER]);
    const trust = ['env', `NODE_EXTRA_CA_CERTS=${cert.cert}`, process.execPath];

    const server = lab.spawn('server', [
      process.execPath,
      NAT_SERVER,
      ...['--listen', SERVER, '--realm', 'lab', '--auth-secret', 'lab-secret', '--rendezvous-port', '8080'],
      ...['--tls-port', '443', '--tls-cert', cert.cert, '--tls-key', cert.key],
      ...['--allow-peer', '198.18.0.0/15', '--allow-peer', '203.0.113.0/24', '--allow-peer', '198.51.100.0/24', '--log-level', 'warn'],
    ]);
    await waitFor(
      () => /rendezvous ws:/.test(server.output()) || server.hasExited(),
      30_000,
      'nat-server',
      () => server.output(),
    );
    expect(server.hasExited(), server.output()).toBe(false);
    // An independent probe first (coturn's STUN client): UDP gets no answer from A, one from B.
    const probeB = await lab.exec('clientB', ['turnutils_stunclient', SERVER], { timeoutMs: 10_000 });
    expect(probeB.stdout + probeB.stderr).toMatch(/UDP reflexive addr: 203\.0\.113\.253:\d+/);
    const probeA = await lab.exec('clientA', ['turnutils_stunclient', SERVER], { timeoutMs: 10_000 });
    expect(probeA.stdout + probeA.stderr).not.toMatch(/reflexive addr/);
    const droppedByProbe = await counter(lab, 'udp_dropped');
    expect(droppedByProbe).toBeGreaterThan(0);

    const listener = lab.spawn('clientB', [...trust, NAT_CLI, 'listen', '--rendezvous', ONE_URL, '--json', '--identity', join(lab.tmpDir, 'b.key')]);
    await waitFor(
      () => /^\{"id":/m.test(listener.output()) || listener.hasExited(),
      30_000,
      'nat listen id',
      () => listener.output(),
    );
    const idLine = listener
      .output()
      .split('\n')
      .find((l) => l.startsWith('{"id":'));
    expect(idLine, `nat listen --rendezvous ${ONE_URL} did not register:\n${listener.output()}\nserver: ${server.output()}`).toBeDefined();
    const { id } = JSON.parse(idLine!) as { id: string };

    const ping = [NAT_CLI, 'ping', id, '--rendezvous', ONE_URL, '--json', '--count', '3', '--interval', '100', '--timeout', '60000'];
    const r = await lab.exec('clientA', [...trust, ...ping, '--identity', join(lab.tmpDir, 'a.key')], { timeoutMs: 120_000 });
    const log = `ping exit ${r.code}\nstdout: ${r.stdout}\nstderr: ${r.stderr}\nlisten: ${listener.output()}\nserver: ${server.output()}`;
    expect(r.code, log).toBe(0);
    const line = r.stdout.split('\n').find((l) => l.startsWith('{'));
    expect(line, log).toBeDefined();
    const result = JSON.parse(line!) as PingJson;
    expect(result.path, log).toBe('relay');
    // A's own candidate is its relay on the server: allocated over TLS on 443, the only way out.
    expect(result.localCandidate.type, log).toBe('relay');
    expect(result.localCandidate.address, log).toMatch(new RegExp(`^${SERVER.replaceAll('.', '\\.')}:\\d+$`));
    expect(result.rttMs.length, log).toBe(3);

    const udp = await counter(lab, 'udp_dropped');
    const tls = await counter(lab, 'tls_out');
    console.log(
      `[only-443] ping via ${result.localCandidate.type} ${result.localCandidate.address} in ${Math.round(result.connectMs)} ms; router A: ${tls} TCP/443 packets out, ${udp - droppedByProbe} UDP packets of nat ping dropped (${droppedByProbe} of the probe), ${await counter(lab, 'other_dropped')} other dropped`,
    );
    // nat ping tried UDP (STUN, TURN, checks) and every datagram died at the router.
    expect(udp).toBeGreaterThan(droppedByProbe);
    expect(tls).toBeGreaterThan(0);
  });
});
