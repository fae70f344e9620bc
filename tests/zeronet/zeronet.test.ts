/**
 * Real ZeroNet in a kernel-NAT lab (zeronet-lab.ts) with the NatTraversal plugin
 * (integrations/zeronet/) on the site owner, behind a symmetric NAT:
 * (i) the plugin exposes the fileserver through nat-server; an unmodified ZeroNet on the internet
 *     side that knows only the site address and the tracker (ZeroNet's Bootstrapper plugin)
 *     downloads the site and verifies its signatures; the owner sees the peer's real address
 *     and the connection used TLS;
 * (ii) the same from an unmodified ZeroNet behind another symmetric NAT;
 * (v) a second peer with the plugin behind its NAT reaches the owner (which advertises itself as the
 *     owner of its public port) directly over a peer link, not through the server;
 * (vi) behind a symmetric NAT again, where no direct path exists, it falls back to the server;
 * (iv) a killed nat child is restarted, and the child stops when ZeroNet stops;
 * (iii) with UPnP on the owner's router (miniupnpd) the plugin maps the port instead, and the
 *     tracker records the router's public address.
 * Needs the ZeroNet tarball (see findZeroNetTarball) and Debian's python3 modules: a missing one
 * fails the suite, it never skips.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { labAvailable, processRunning, type LabProcess } from '../lab/netns.js';
import { allowStunAnswers, installMiniupnpdTables, miniupnpdAvailable, startMiniupnpd, startStunIn, type Miniupnpd } from '../lab/portmap-lab.js';
import { ZN, createZeroNetLab, type ZeroNetLab, type ZeroNetNs } from './zeronet-lab.js';
import {
  NAT_CLI,
  NAT_SERVER,
  PEX_PEERS_PY,
  PYTHON,
  TRACKER_PEERS_PY,
  checkZeroNetPython,
  enableBuiltin,
  extractZeroNet,
  findZeroNetTarball,
  installPlugin,
  makeHome,
  siteAddressOf,
  trackerDb,
  zeronetArgv,
  type ZeroNetHome,
} from './zeronet.js';

const TRACKER = `zero://${ZN.tracker}:15441`;
const RENDEZVOUS = `ws://${ZN.server}:8443/`;
const PORT = 15441;
/** The public port the owner asks nat-server for in (i): another than its own, so that the announced port must be the public one. */
const PUBLIC = 15442;

async function until<T>(what: string, ms: number, probe: () => Promise<T | undefined> | T | undefined, log?: () => string): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await probe();
    if (v !== undefined) return v;
    if (Date.now() > end) throw new Error(`timed out after ${ms} ms waiting for ${what}${log ? `\n${log().slice(-4000)}` : ''}`);
    await new Promise((r) => setTimeout(r, 250));
  }
}

describe('real ZeroNet behind symmetric NATs with the NatTraversal plugin', () => {
  let lab: ZeroNetLab;
  let root: string;
  const homes: Record<'trk' | 'own' | 'p3' | 'p2' | 'p3u' | 'p2d' | 'p2f', ZeroNetHome> = {} as never;
  let site: string;
  let payload: Buffer;
  let owner: LabProcess;
  let miniupnpd: Miniupnpd | undefined;
  /** ZeroNet's log of the last siteDownload. */
  let downloadLog = '';

  const zeronet = (home: ZeroNetHome, args: readonly string[]): string[] => zeronetArgv(root, home, [TRACKER], args);
  const cli = async (role: ZeroNetNs, home: ZeroNetHome, args: readonly string[], timeoutMs = 60_000): Promise<string> => {
    const r = await lab.exec(role, zeronet(home, args), { timeoutMs });
    return `${r.stdout}\n${r.stderr}`;
  };
  const trackerPeers = async (): Promise<{ address: string; port: number; hashes: number }[]> => {
    const r = await lab.exec('trk', [PYTHON, '-c', TRACKER_PEERS_PY, trackerDb(homes.trk)], { timeoutMs: 20_000 });
    return r.code === 0 ? (JSON.parse(r.stdout) as { address: string; port: number; hashes: number }[]) : [];
  };
  const ownerLog = (): string => readFileSync(join(homes.own.log, 'debug.log'), 'utf8');
  const startOwner = (extra: readonly string[]): LabProcess =>
    lab.spawn('own', zeronet(homes.own, ['--fileserver_port', String(PORT), '--nat_bin', `${process.execPath} ${NAT_CLI}`, '--nat_wait', '60', ...extra]));
  const childPids = (p: LabProcess, mode: string): number[] =>
    [...p.output().matchAll(new RegExp(`nat child started \\(pid (\\d+), mode ${mode}\\)`, 'g'))].map((m) => Number(m[1]));
  const connectedOverTls = (ip: string, flags = ''): RegExp =>
    new RegExp(`Conn#\\s*\\d+ ${ip.replace(/\./g, '\\.')}\\s.*Crypt in connection using implicit SSL`, flags);
  const ping = (role: ZeroNetNs, home: ZeroNetHome, ip: string, port: number): Promise<string> => cli(role, home, ['peerPing', ip, String(port)]);
  /** An unmodified ZeroNet that knows the site address and the tracker: downloads the site, then verifies it. */
  const download = async (role: 'p3' | 'p2', home: ZeroNetHome = homes[role], options: readonly string[] = []): Promise<string> => {
    const got = await cli(role, home, [...options, 'siteDownload', site], 120_000);
    downloadLog = readFileSync(join(home.log, 'cmd.log'), 'utf8'); // each CLI action rewrites cmd.log
    expect(got).toMatch(/Downloaded in/);
    const verify = await cli(role, home, [...options, 'siteVerify', site]);
    expect(readFileSync(join(home.data, site, 'payload.bin')).equals(payload)).toBe(true);
    expect(verify).toMatch(/\[OK\] content\.json/);
    expect(verify).toMatch(/\[OK\] All file sha512sum matches/);
    return verify;
  };

  beforeAll(async () => {
    const available = labAvailable();
    if (!available.ok) throw new Error(`the ZeroNet lab needs network namespaces: ${available.reason}`);
    const upnp = miniupnpdAvailable();
    if (!upnp.ok) throw new Error(upnp.reason);
    const tarball = findZeroNetTarball();
    checkZeroNetPython();
    lab = await createZeroNetLab();
    root = extractZeroNet(tarball, join(lab.tmpDir, 'src'));
    for (const name of ['trk', 'own', 'p3', 'p2', 'p3u', 'p2d', 'p2f'] as const) homes[name] = makeHome(lab.tmpDir, name);
    enableBuiltin(homes.trk, 'Bootstrapper');
    lab.spawn('trk', zeronet(homes.trk, ['--fileserver_ip', ZN.tracker, '--fileserver_port', String(PORT), '--ip_external', ZN.tracker]));
    lab.spawn('inet', [
      process.execPath,
      NAT_SERVER,
      '--listen',
      ZN.server,
      '--rendezvous-port',
      '8443',
      '--expose-ports',
      '15400-15499',
      '--user',
      'alice:alice-pw',
      '--expose-outbound',
      '--allow-peer',
      '203.0.113.0/24',
      '--log-level',
      'warn',
    ]);
    // The site, made and signed with ZeroNet's own CLI.
    site = siteAddressOf(await cli('own', homes.own, ['siteCreate']));
    payload = randomBytes(300_000);
    writeFileSync(join(homes.own.data, site, 'payload.bin'), payload);
    expect(await cli('own', homes.own, ['siteSign', site])).toMatch(/content\.json signed|Saving to content\.json/i);
    expect(installPlugin(homes.own)).toMatch(/NatTraversal installed/);
    await until('the tracker', 30_000, async () =>
      (await lab.exec('trk', ['ss', '-Htln', `sport = :${PORT}`])).stdout.includes(ZN.tracker) ? true : undefined,
    );
  }, 120_000);

  afterAll(async () => {
    await lab?.destroy();
  }, 30_000);

  test('(i) exposed through nat-server: a ZeroNet on the internet finds the owner through the tracker, downloads and verifies the site; the owner sees its real address, over TLS', async () => {
    owner = startOwner([
      '--nat_rendezvous',
      RENDEZVOUS,
      '--nat_user',
      'alice:alice-pw',
      '--nat_announce_via_server',
      '--nat_public_port',
      String(PUBLIC),
      '--nat_advertise_peer',
      'True', // for (v); peers without the plugin see no difference
    ]);
    await until(
      'the exposed address',
      60_000,
      () => (/fileserver reachable at 203\.0\.113\.1:15442 \(expose\)/.test(owner.output()) ? true : undefined),
      () => owner.output(),
    );
    // The announce left through the server with the public port: the tracker recorded SERVER:PUBLIC, never the NAT's address.
    const peers = await until(
      'the announce',
      60_000,
      async () => {
        const p = await trackerPeers();
        return p.some((r) => r.address === ZN.server && r.port === PUBLIC) ? p : undefined;
      },
      () => owner.output(),
    );
    expect(peers.some((r) => r.address === ZN.router1Wan)).toBe(false);
    await download('p3');
    // The owner's connection server names the peer by its real address and switched to TLS.
    const log = ownerLog();
    expect(log).toMatch(connectedOverTls(ZN.peer3));
    expect(log).not.toMatch(/Conn#\s*\d+ 127\.0\.0\.1\s.*Incoming connection/);
  }, 240_000);

  test('(ii) an unmodified ZeroNet behind another symmetric NAT downloads and verifies the site too; the owner sees its NAT address, over TLS', async () => {
    await download('p2');
    expect(ownerLog()).toMatch(connectedOverTls(ZN.router2Wan));
    // The owner's peer records (its answer to a peer exchange, ZeroNet's own peerCmd): both peers
    // under their real addresses (ZeroNet leaves out private ones such as 127.0.0.1).
    const pex = await cli('p3', homes.p3, ['peerCmd', ZN.server, String(PUBLIC), 'pex', JSON.stringify({ site, peers: [], need: 20 })]);
    const decoded = await lab.exec('p3', [PYTHON, '-c', PEX_PEERS_PY], { input: pex, timeoutMs: 20_000 });
    const peers = JSON.parse(decoded.stdout) as string[];
    expect(new Set(peers.map((p) => p.split(':')[0]))).toEqual(new Set([ZN.router2Wan, ZN.peer3]));
  }, 180_000);

  test('(v) a second peer with the plugin behind its NAT reaches the owner directly over a peer link, not through the server; the site arrives verified', async () => {
    // The owner advertised itself as the owner of its public port (--nat_advertise_peer).
    const told = await lab.exec('p2', [process.execPath, NAT_CLI, 'owner', String(PUBLIC), '--rendezvous', RENDEZVOUS, '--json'], { timeoutMs: 30_000 });
    expect(JSON.parse(told.stdout)).toMatchObject({ event: 'owner', port: PUBLIC });
    // Behind Linux's default NAT (port-restricted cone): punching reaches the owner's symmetric NAT
    // (two symmetric NATs would leave only the relay). Forget the connections of (ii).
    await lab.setRouter('r2', 'port-restricted-cone');
    expect((await lab.exec('r2', ['conntrack', '-F'])).code).toBe(0);
    expect(installPlugin(homes.p2d)).toMatch(/NatTraversal installed/);
    const tlsBefore = [...ownerLog().matchAll(connectedOverTls(ZN.router2Wan, 'g'))].length;
    await download('p2', homes.p2d, ['--nat_mode', 'off', '--nat_rendezvous', RENDEZVOUS, '--nat_bin', `${process.execPath} ${NAT_CLI}`]);
    const log = downloadLog;
    expect(log).toMatch(
      new RegExp(`connection to ${ZN.server.replace(/\./g, '\\.')}:${PUBLIC} goes over the direct peer link to owner [a-z2-7]{32} \\(path direct`),
    );
    expect(log).toMatch(/nat connect \d+ event: \{[^\n]*"event": "path"[^\n]*"path": "direct"/);
    // The second peer's router saw no TCP to the server's public port (the bytes did not pass the
    // server), and UDP to the owner's router (the peer link's direct path).
    const ct = (await lab.exec('r2', ['conntrack', '-L'])).stdout;
    expect(ct).not.toMatch(new RegExp(`^tcp .*dst=${ZN.server} .*dport=${PUBLIC} `, 'm'));
    expect(ct).toMatch(new RegExp(`^udp .*src=${ZN.peer2} dst=${ZN.router1Wan} `, 'm'));
    // The owner's fileserver saw the peer's NAT address (PROXY v2 from nat expose over the link), over TLS.
    expect([...ownerLog().matchAll(connectedOverTls(ZN.router2Wan, 'g'))].length).toBeGreaterThan(tlsBefore);
  }, 180_000);

  test('(vi) with no direct path (both NATs symmetric, no relay) the peer with the plugin falls back to the server, said once', async () => {
    await lab.setRouter('r2', 'symmetric');
    expect((await lab.exec('r2', ['conntrack', '-F'])).code).toBe(0);
    expect(installPlugin(homes.p2f)).toMatch(/NatTraversal installed/);
    await download('p2', homes.p2f, ['--nat_mode', 'off', '--nat_rendezvous', RENDEZVOUS, '--nat_bin', `${process.execPath} ${NAT_CLI}`]);
    const server = `${ZN.server.replace(/\./g, '\\.')}:${PUBLIC}`;
    const fallbacks = [...downloadLog.matchAll(new RegExp(`owner [a-z2-7]{32} of ${server}: .*; connecting through the server`, 'g'))];
    expect(fallbacks).toHaveLength(1);
    expect(downloadLog).not.toMatch(/goes over the direct peer link/);
    // This time the bytes went through the server's public port.
    expect((await lab.exec('r2', ['conntrack', '-L'])).stdout).toMatch(new RegExp(`^tcp .*src=${ZN.peer2} dst=${ZN.server} .*dport=${PUBLIC} `, 'm'));
  }, 180_000);

  test('(iv) a killed nat child is restarted; ZeroNet stopping stops its child', async () => {
    const [first] = childPids(owner, 'expose');
    expect(first).toBeGreaterThan(0);
    process.kill(first!, 'SIGKILL');
    const second = await until(
      'a new nat child',
      30_000,
      () => childPids(owner, 'expose').find((p) => p !== first),
      () => owner.output(),
    );
    await until(
      'the address again',
      30_000,
      () => (owner.output().split(`pid ${second}`)[1]?.includes('reachable at 203.0.113.1:15442') ? true : undefined),
      () => owner.output(),
    );
    expect(await ping('p3', homes.p3, ZN.server, PUBLIC)).toMatch(/Response time/);
    await owner.stop(20_000); // SIGTERM: the plugin stops the child, then ZeroNet dies of SIGTERM as without it
    expect(await owner.exited).toEqual({ code: null, signal: 'SIGTERM' });
    expect(owner.output()).toContain(`stopping nat child ${second}`);
    expect(processRunning(second)).toBe(false);
    const links = childPids(owner, 'link');
    expect(links.length).toBeGreaterThan(0);
    for (const pid of links) expect(processRunning(pid)).toBe(false);
    // nat-server closed the public port with the exposure.
    expect(await ping('p3', homes.p3, ZN.server, PUBLIC)).not.toMatch(/Response time/);
  }, 120_000);

  test('(iii) the router offers UPnP (miniupnpd): the plugin maps the port instead of using the server; the tracker records the router address', async () => {
    const r1 = lab.ns('r1');
    // A home router with UPnP: Linux's default NAT (port-restricted cone). miniupnpd refuses to
    // map behind the symmetric recipe, which also randomises the router's own STUN check.
    await lab.setRouter('r1', 'port-restricted-cone');
    await startStunIn(lab.host, lab.ns('inet'), ZN.stunPrimary, ZN.stunSecondary);
    await installMiniupnpdTables(lab.host, r1);
    await allowStunAnswers(lab.host, r1, 'wan0', [ZN.stunPrimary, ZN.stunSecondary]);
    miniupnpd = await startMiniupnpd(lab.host, { ns: r1, extIf: 'wan0', lanIf: 'lan0', lanPrefix: '198.18.0.0/24', stunHost: ZN.stunPrimary });
    owner = startOwner(['--nat_rendezvous', `ws://${ZN.server}:8443/`, '--nat_user', 'alice:alice-pw', '--nat_announce_via_server']);
    await until(
      'the mapped address',
      60_000,
      () => (/fileserver reachable at 203\.0\.113\.254:15441 \(map\)/.test(owner.output()) ? true : undefined),
      () => owner.output(),
    );
    expect(childPids(owner, 'expose')).toEqual([]);
    expect((await miniupnpd.natRules()).some((r) => r.includes(`${ZN.owner}:${PORT}`) || (r.includes(ZN.owner) && r.includes(String(PORT))))).toBe(true);
    await until('the announce from the router address', 60_000, async () =>
      (await trackerPeers()).some((r) => r.address === ZN.router1Wan && r.port === PORT) ? true : undefined,
    );
    await download('p3', homes.p3u);
    expect(ownerLog()).toMatch(connectedOverTls(ZN.peer3));
    await owner.stop(20_000);
    expect(await miniupnpd.natRules()).toEqual([]); // the child removed its mapping when ZeroNet stopped
  }, 180_000);
});
