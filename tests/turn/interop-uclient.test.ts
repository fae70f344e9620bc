/**
 * coturn's turnutils_uclient (an independent TURN client) against nat-server's TURN relay on
 * loopback: two clients relaying to each other (-y), over UDP and TCP, through channels and
 * through Send/Data indications (-s), and with TCP relay allocations (RFC 6062, -T). uclient uses RFC 5766 channel numbers (up to 0x7FFE), so
 * the server runs with legacyChannelNumbers, as an operator replacing coturn would.
 */
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { startStunServer, staticUsers, type StunServer } from '@nat/server';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const UCLIENT = ['/usr/bin/turnutils_uclient', '/usr/local/bin/turnutils_uclient'].find((p) => existsSync(p));
if (!UCLIENT) console.warn('[interop] turnutils_uclient not installed (package coturn): test skipped');

let server: StunServer;
beforeAll(async () => {
  server = await startStunServer({
    listen: ['127.0.0.1'],
    port: 0,
    altPort: null,
    rateLimit: { perSecond: 0 },
    turn: { realm: 'uclient.test', auth: staticUsers({ alice: 'alice-pw' }), peers: { allow: ['127.0.0.0/8'] }, legacyChannelNumbers: true, unauthenticatedRate: 10_000 },
  });
});
afterAll(() => server.close());

function uclient(flags: string[]): Promise<string> {
  const port = server.listeners.find((l) => l.transport === 'udp')!.address.port;
  const args = ['-u', 'alice', '-w', 'alice-pw', '-r', 'uclient.test', '-y', '-n', '40', '-m', '2', '-l', '120', '-z', '5', '-p', String(port), ...flags, '127.0.0.1'];
  return new Promise((resolve, reject) =>
    execFile(UCLIENT!, args, { timeout: 30_000 }, (err, stdout, stderr) => (err ? reject(new Error(`${err.message}\n${stdout}\n${stderr}`)) : resolve(`${stdout}\n${stderr}`))),
  );
}

function totals(out: string): { sent: number; received: number; lost: number } {
  const m = /tot_send_msgs=(\d+), tot_recv_msgs=(\d+)\s*$/m.exec(out.split('\n').filter((l) => /start_mclient: tot_send_msgs=/.test(l)).pop() ?? '');
  const lost = /Total lost packets (\d+)/.exec(out);
  if (!m || !lost) throw new Error(`unexpected uclient output:\n${out}`);
  return { sent: Number(m[1]), received: Number(m[2]), lost: Number(lost[1]) };
}

describe.skipIf(!UCLIENT)('turnutils_uclient against nat-server', () => {
  it.each([
    ['UDP, channels', [], 160],
    ['UDP, Send/Data indications', ['-s'], 160],
    ['TCP, channels', ['-t'], 160],
    ['TCP, Send/Data indications', ['-t', '-s'], 160],
    // RFC 6062: TCP relay allocations, Connect / ConnectionAttempt / ConnectionBind
    ['TCP relay (RFC 6062)', ['-T'], 80],
  ])('%s: every message relayed', async (_name, flags, expected) => {
    const before = server.stats().turn!;
    const out = await uclient(flags as string[]);
    const t = totals(out);
    expect(t.sent, out).toBe(expected); // -y: 2 clients, each a pair, 40 messages each way
    expect(t.received, out).toBe(t.sent);
    expect(t.lost, out).toBe(0);
    const after = server.stats().turn!;
    expect(after.allocationsCreated - before.allocationsCreated).toBeGreaterThanOrEqual(2);
    if (!(flags as string[]).includes('-T')) expect(after.relayedToPeer - before.relayedToPeer).toBeGreaterThanOrEqual(160);
  });
});
