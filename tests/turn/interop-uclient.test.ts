/**
 * coturn's turnutils_uclient (an independent TURN client) against nat-server's TURN relay on
 * loopback: two clients relaying to each other (-y), over UDP and TCP, through channels and
 * through Send/Data indications (-s), and with TCP relay allocations (RFC 6062, -T). uclient binds
 * RFC 5766 channel numbers (0x4000-0x7FFF, mostly above RFC 8656's 0x4FFF): the server takes them
 * by default, and refuses them with --strict-channel-range.
 */
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { PassThrough } from 'node:stream';
import { startStunServer, staticUsers, type StunServer } from '@nat/server';
import { type RunningServer, run as runServer } from '@nat/server-app';
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
    // uclient leaves an allocation and unused EVEN-PORT reservations behind after each run; both
    // count against alice's quota (reservations for 30 s), so these back-to-back runs need more than 10.
    turn: { realm: 'uclient.test', auth: staticUsers({ alice: 'alice-pw' }), peers: { allow: ['127.0.0.0/8'] }, unauthenticatedRate: 10_000, userQuota: 100 },
  });
});
afterAll(() => server.close());

function uclient(flags: string[], port = server.listeners.find((l) => l.transport === 'udp')!.address.port): Promise<string> {
  const args = [
    '-u',
    'alice',
    '-w',
    'alice-pw',
    '-r',
    'uclient.test',
    '-y',
    '-n',
    '40',
    '-m',
    '2',
    '-l',
    '120',
    '-z',
    '5',
    '-p',
    String(port),
    ...flags,
    '127.0.0.1',
  ];
  return new Promise((resolve, reject) =>
    execFile(UCLIENT!, args, { timeout: 30_000 }, (err, stdout, stderr) =>
      err ? reject(new Error(`${err.message}\n${stdout}\n${stderr}`)) : resolve(`${stdout}\n${stderr}`),
    ),
  );
}

function totals(out: string): { sent: number; received: number; lost: number } {
  const m = /tot_send_msgs=(\d+), tot_recv_msgs=(\d+)\s*$/m.exec(
    out
      .split('\n')
      .filter((l) => /start_mclient: tot_send_msgs=/.test(l))
      .pop() ?? '',
  );
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

describe.skipIf(!UCLIENT)('turnutils_uclient in channel mode against the nat-server binary', () => {
  const flags = [
    '--listen',
    '127.0.0.1',
    '--port',
    '0',
    '--no-alt-port',
    '--no-tcp',
    '--realm',
    'uclient.test',
    '--user',
    'alice:alice-pw',
    '--allow-peer',
    '127.0.0.0/8',
    '--log-level',
    'silent',
  ];
  async function natServer(extra: string[]): Promise<{ running: RunningServer; port: number }> {
    const stderr = new PassThrough();
    const running = (await runServer([...flags, ...extra], { stdout: new PassThrough(), stderr }))!;
    return { running, port: running.stun.listeners.find((l) => l.transport === 'udp')!.address.port };
  }

  it('default flags: the channels uclient binds (RFC 5766 numbers) carry every message', async () => {
    const { running, port } = await natServer([]);
    try {
      const out = await uclient([], port);
      expect(totals(out), out).toEqual({ sent: 160, received: 160, lost: 0 });
      const turn = running.stun.stats().turn!;
      expect(turn.relayedToPeer).toBeGreaterThanOrEqual(160);
    } finally {
      await running.stop();
    }
  });

  it("--strict-channel-range: uclient's ChannelBind to a number above 0x4FFF is refused with 400", async () => {
    const { running, port } = await natServer(['--strict-channel-range']);
    try {
      // uclient picks its channel numbers at random in 0x4000-0x7FFF; 10 clients make it all but
      // certain that one is above 0x4FFF. uclient stops (exit 255) at the first refusal.
      const out = await uclient(['-m', '10'], port).then(
        (o) => o,
        (e: Error) => e.message,
      );
      expect(out).toMatch(/channel bind: error 400 \(Bad Request: channel number outside 0x4000-0x4FFF\)/);
      expect(running.stun.stats().turn!.relayedToPeer).toBeLessThan(160);
    } finally {
      await running.stop();
    }
  });
});
