/**
 * Outbound connections from the server's public address (nat-server --expose-outbound, nat expose
 * --public --outbound-socks): the built binaries as child processes, an HTTP "tracker" on a
 * loopback alias that records the source address of each request, and SOCKS clients that are not
 * our code (curl, and a SOCKS5 handshake written out byte by byte below).
 *
 * The server listens on 127.0.0.2; the client's own connections leave from 127.0.0.1 (the
 * kernel's source for loopback), so a tracker that records 127.0.0.2 saw the server, not the client.
 */
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { type IncomingMessage, type Server as HttpServer, createServer as createHttpServer } from 'node:http';
import { type AddressInfo, type Socket, connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { anonymousRelayCredentials } from '@nat/server';
import { resolveConfig } from '@nat/server-app';
import { echoServer, portBlock, sha256 } from './harness.js';

const repo = fileURLToPath(new URL('../..', import.meta.url));
const NAT_SERVER = join(repo, 'apps/server/dist/main.js');
const NAT_CLI = join(repo, 'apps/cli/dist/main.js');
const TRACKER_IP = '127.0.0.9';
const DENIED_IP = '127.0.0.10';

/** A child process with its output as text. */
interface Child {
  readonly child: ChildProcess;
  out(): string;
  err(): string;
  /** The JSON lines of stdout. */
  events(): Record<string, unknown>[];
  waitFor(re: RegExp, what?: 'out' | 'err', ms?: number): Promise<RegExpExecArray>;
  exited(): Promise<number | null>;
  stop(): Promise<void>;
}

function start(args: string[]): Child {
  const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stdout!.on('data', (d: Buffer) => (out += d.toString('utf8')));
  child.stderr!.on('data', (d: Buffer) => (err += d.toString('utf8')));
  const exit = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
  return {
    child,
    out: () => out,
    err: () => err,
    events: () =>
      out
        .split('\n')
        .filter((l) => l.startsWith('{'))
        .map((l) => JSON.parse(l) as Record<string, unknown>),
    async waitFor(re, what = 'out', ms = 20_000) {
      const end = Date.now() + ms;
      for (;;) {
        const m = re.exec(what === 'out' ? out : err);
        if (m) return m;
        if (child.exitCode !== null || Date.now() > end) throw new Error(`waited for ${re} (exit ${child.exitCode}):\n${out}\n${err}`);
        await new Promise((r) => setTimeout(r, 25));
      }
    },
    exited: () => exit,
    async stop() {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGTERM');
        const t = setTimeout(() => child.kill('SIGKILL'), 5000);
        await exit;
        clearTimeout(t);
      }
    },
  };
}

/** nat-server on 127.0.0.2 with the rendezvous and expose services; resolves with its rendezvous URL. */
async function startServer(args: string[]): Promise<{ server: Child; url: string; rvPort: number }> {
  const range = portBlock(10);
  const server = start([
    NAT_SERVER,
    '--listen',
    '127.0.0.2',
    '--port',
    '0',
    '--no-alt-port',
    '--no-tcp',
    '--rendezvous-port',
    '0',
    '--expose-ports',
    `${range.min}-${range.max}`,
    '--log-level',
    'silent',
    ...args,
  ]);
  const m = await server.waitFor(/rendezvous (ws:\/\/127\.0\.0\.2:(\d+)\/)/, 'err');
  await server.waitFor(/expose ws:/, 'err');
  return { server, url: m[1]!, rvPort: Number(m[2]) };
}

/** `nat expose ECHO --public --outbound-socks 127.0.0.1:0 --json`; resolves once the proxy listens, with its port. */
async function startExpose(url: string, user: string, target: number): Promise<{ nat: Child; socksPort: number }> {
  const nat = start([NAT_CLI, 'expose', `127.0.0.1:${target}`, '--public', '--rendezvous', url, '--user', user, '--outbound-socks', '127.0.0.1:0', '--json']);
  const m = await nat.waitFor(/"event":"outbound-socks","address":"127\.0\.0\.1:(\d+)"/);
  return { nat, socksPort: Number(m[1]) };
}

/** Reads exactly `n` bytes from a socket (rejects if it ends first). */
function readBytes(s: Socket, n: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    let buf = Buffer.alloc(0);
    const onData = (c: Buffer): void => {
      buf = Buffer.concat([buf, c]);
      if (buf.length >= n) {
        s.off('data', onData);
        s.off('end', onEnd);
        s.pause();
        if (buf.length > n) s.unshift(buf.subarray(n));
        resolve(buf.subarray(0, n));
      }
    };
    const onEnd = (): void => reject(new Error(`the SOCKS server closed after ${buf.length} of ${n} bytes (${buf.toString('hex')})`));
    s.on('data', onData);
    s.once('end', onEnd);
    s.resume();
  });
}

/**
 * A SOCKS5 client written out from RFC 1928 (independent of our SOCKS code): method negotiation
 * with the given methods, then a request. Returns the method chosen, the reply code and the
 * socket (open after a success).
 */
async function socks5(
  port: number,
  req: { cmd?: number; ip?: string; port: number; name?: string },
  methods = [0],
): Promise<{ method: number; reply: number | undefined; bound: string; socket: Socket }> {
  const socket = connect(port, '127.0.0.1');
  socket.on('error', () => {});
  await new Promise<void>((r, j) => socket.once('connect', r).once('error', j));
  socket.write(Buffer.from([5, methods.length, ...methods]));
  const sel = await readBytes(socket, 2);
  if (sel[1] !== 0) return { method: sel[1]!, reply: undefined, bound: '', socket };
  let addr: Buffer;
  if (req.name !== undefined) addr = Buffer.concat([Buffer.from([3, req.name.length]), Buffer.from(req.name)]);
  else if (req.ip!.includes(':')) addr = Buffer.concat([Buffer.from([4]), Buffer.from(req.ip === '::1' ? '00000000000000000000000000000001' : '', 'hex')]);
  else addr = Buffer.from([1, ...req.ip!.split('.').map(Number)]);
  const p = Buffer.alloc(2);
  p.writeUInt16BE(req.port);
  socket.write(Buffer.concat([Buffer.from([5, req.cmd ?? 1, 0]), addr, p]));
  const head = await readBytes(socket, 4);
  const rest = await readBytes(socket, head[3] === 4 ? 18 : 6);
  const bound = head[3] === 1 ? `${[...rest.subarray(0, 4)].join('.')}:${rest.readUInt16BE(4)}` : `v6:${rest.readUInt16BE(16)}`;
  return { method: 0, reply: head[1], bound, socket };
}

/** An HTTP tracker: records each request's source address; `/echo` answers with the body. */
async function startTracker(host: string): Promise<{ server: HttpServer; port: number; seen: string[] }> {
  const seen: string[] = [];
  const server = createHttpServer((req: IncomingMessage, res) => {
    seen.push(req.socket.remoteAddress ?? '?');
    const body: Buffer[] = [];
    req.on('data', (c: Buffer) => body.push(c));
    req.on('end', () => {
      if (req.url?.startsWith('/echo')) res.end(Buffer.concat(body));
      else res.end(JSON.stringify({ ip: req.socket.remoteAddress }));
    });
  });
  await new Promise<void>((r) => server.listen(0, host, r));
  return { server, port: (server.address() as AddressInfo).port, seen };
}

function curl(args: string[]): Promise<{ code: number; stdout: Buffer; stderr: string }> {
  return new Promise((resolve) => {
    execFile('curl', ['--silent', '--show-error', '--max-time', '30', ...args], { encoding: 'buffer', maxBuffer: 16 << 20 }, (e, stdout, stderr) =>
      resolve({ code: e === null ? 0 : Number((e as { code?: number }).code ?? 1), stdout, stderr: stderr.toString('utf8') }),
    );
  });
}

describe('nat expose --public --outbound-socks through nat-server --expose-outbound', () => {
  let dir: string;
  let srv: Awaited<ReturnType<typeof startServer>>;
  let tracker: Awaited<ReturnType<typeof startTracker>>;
  let local: Awaited<ReturnType<typeof startTracker>>;
  let echo: Awaited<ReturnType<typeof echoServer>>;
  let alice: Awaited<ReturnType<typeof startExpose>>;
  const children: Child[] = [];

  beforeAll(async () => {
    // curl is the independent SOCKS client here: its absence fails the suite (scripts/install-test-deps.sh installs it).
    expect((await curl(['--version'])).code, 'curl is needed (apt-get install curl)').toBe(0);
    dir = mkdtempSync(join(tmpdir(), 'nat-outbound-'));
    const config = join(dir, 'server.json');
    writeFileSync(config, JSON.stringify({ exposeOutboundPerSession: 3, exposeOutboundPerMinute: 20 }));
    tracker = await startTracker(TRACKER_IP);
    local = await startTracker('127.0.0.1');
    echo = await echoServer();
    srv = await startServer([
      '--config',
      config,
      '--expose-outbound',
      '--allow-peer',
      `${TRACKER_IP}/32`,
      '--allow-peer',
      '127.0.0.1/32',
      '--allow-peer',
      '::1/128',
      '--allow-peer',
      '127.0.0.2/32', // the server's own address stays refused, whatever --allow-peer says
      '--user',
      'alice:alice-pw',
      '--user',
      'bob:bob-pw',
      '--auth-secret',
      'S3CRET-S3CRET',
    ]);
    children.push(srv.server);
    alice = await startExpose(srv.url, 'alice:alice-pw', echo.port);
    children.push(alice.nat);
  }, 60_000);

  afterAll(async () => {
    await Promise.all(children.map((c) => c.stop()));
    tracker?.server.closeAllConnections();
    tracker?.server.close();
    local?.server.closeAllConnections();
    local?.server.close();
    echo?.server.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  test("curl through the SOCKS proxy: the tracker sees the server's address, data intact both ways, host names resolved by the server", async () => {
    // A direct request from this machine comes from 127.0.0.1: the address the client would show.
    const direct = await curl([`http://${TRACKER_IP}:${tracker.port}/announce`]);
    expect(JSON.parse(direct.stdout.toString())).toEqual({ ip: '127.0.0.1' });
    const via = await curl(['--socks5', `127.0.0.1:${alice.socksPort}`, `http://${TRACKER_IP}:${tracker.port}/announce?port=15441`]);
    expect(via.stderr).toBe('');
    expect(JSON.parse(via.stdout.toString())).toEqual({ ip: '127.0.0.2' });
    expect(tracker.seen).toEqual(['127.0.0.1', '127.0.0.2']);
    // 1 MiB up and the same 1 MiB back down
    const body = randomBytes(1 << 20);
    writeFileSync(join(dir, 'body'), body);
    const echoed = await curl([
      '--socks5',
      `127.0.0.1:${alice.socksPort}`,
      '--data-binary',
      `@${join(dir, 'body')}`,
      `http://${TRACKER_IP}:${tracker.port}/echo`,
    ]);
    expect(echoed.code).toBe(0);
    expect(sha256(echoed.stdout)).toBe(sha256(body));
    // --socks5-hostname: the name goes to the server (address type 3), which resolves it
    const named = await curl(['--socks5-hostname', `127.0.0.1:${alice.socksPort}`, `http://localhost:${local.port}/announce`]);
    expect(JSON.parse(named.stdout.toString())).toEqual({ ip: '127.0.0.2' });
    // the --json events: each connection opened from the server's address, and closed with its bytes
    await alice.nat.waitFor(/"state":"closed"[^\n]*"bytesToPeer":(1[0-9]{6})/);
    const ev = alice.nat.events().filter((e) => e['event'] === 'outbound');
    expect(ev.filter((e) => e['state'] === 'opened').map((e) => e['target'])).toEqual(
      expect.arrayContaining([`${TRACKER_IP}:${tracker.port}`, `localhost:${local.port}`]),
    );
    expect(ev.find((e) => e['state'] === 'opened')!['bound']).toMatch(/^127\.0\.0\.2:\d+$/);
    const big = ev.find((e) => e['state'] === 'closed' && (e['bytesToPeer'] as number) > 1 << 20)!;
    expect(big['bytesFromPeer'] as number).toBeGreaterThan(1 << 20);
  });

  test('refusals carry the SOCKS reply of their reason: ruleset 0x02, network 0x03, refused 0x05; BIND and UDP ASSOCIATE 0x07; no acceptable method 0xFF', async () => {
    const closedPort = await (async () => {
      const t = await startTracker(TRACKER_IP);
      const p = t.port;
      await new Promise((r) => t.server.close(r));
      return p;
    })();
    const seenBefore = tracker.seen.length;
    const denied = await socks5(alice.socksPort, { ip: DENIED_IP, port: tracker.port });
    expect(denied.reply).toBe(0x02);
    const own = await socks5(alice.socksPort, { ip: '127.0.0.2', port: srv.rvPort });
    expect(own.reply).toBe(0x02);
    const refused = await socks5(alice.socksPort, { ip: TRACKER_IP, port: closedPort });
    expect(refused.reply).toBe(0x05);
    const v6 = await socks5(alice.socksPort, { ip: '::1', port: tracker.port });
    expect(v6.reply).toBe(0x03); // the server's public address is IPv4
    expect((await socks5(alice.socksPort, { cmd: 2, ip: TRACKER_IP, port: tracker.port })).reply).toBe(0x07);
    expect((await socks5(alice.socksPort, { cmd: 3, ip: '0.0.0.0', port: 1 })).reply).toBe(0x07);
    expect((await socks5(alice.socksPort, { ip: TRACKER_IP, port: tracker.port }, [2])).method).toBe(0xff);
    for (const s of [denied, own, refused, v6]) s.socket.destroy();
    const reasons = alice.nat
      .events()
      .filter((e) => e['state'] === 'refused')
      .map((e) => `${e['reason'] as string} ${e['socksReply'] as number}`);
    expect(reasons).toEqual(expect.arrayContaining(['forbidden 2', 'connection-refused 5', 'network-unreachable 3', 'command-not-supported 7']));
    const forbidden = alice.nat.events().find((e) => e['reason'] === 'forbidden' && String(e['target']).startsWith(DENIED_IP))!;
    expect(forbidden['error']).toMatch(/127\.0\.0\.0\/8.*--allow-peer 127\.0\.0\.0\/8/);
    expect(alice.nat.events().some((e) => e['reason'] === 'forbidden' && /own address/.test(String(e['error'])))).toBe(true);
    expect(tracker.seen.length).toBe(seenBefore); // no refused request reached the tracker
  });

  test('the per-session cap (exposeOutboundPerSession: 3) holds; a slot freed is usable again', async () => {
    const held = [];
    for (let i = 0; i < 3; i++) {
      const c = await socks5(alice.socksPort, { ip: TRACKER_IP, port: tracker.port });
      expect(c.reply).toBe(0);
      expect(c.bound).toMatch(/^127\.0\.0\.2:/);
      held.push(c.socket);
    }
    const over = await socks5(alice.socksPort, { ip: TRACKER_IP, port: tracker.port });
    expect(over.reply).toBe(0x02);
    over.socket.destroy();
    await alice.nat.waitFor(/"reason":"session-cap","socksReply":2/);
    held.pop()!.destroy();
    // the server frees the slot once it saw the close
    let again: Awaited<ReturnType<typeof socks5>> | undefined;
    for (let i = 0; i < 100 && again?.reply !== 0; i++) {
      again?.socket.destroy();
      if (i > 0) await new Promise((r) => setTimeout(r, 100));
      again = await socks5(alice.socksPort, { ip: TRACKER_IP, port: tracker.port });
    }
    expect(again!.reply).toBe(0);
    for (const s of [...held, again!.socket]) s.destroy();
  });

  test("the per-user rate (exposeOutboundPerMinute: 20) holds: bob's 21st connection in a minute is refused", async () => {
    const bob = await startExpose(srv.url, 'bob:bob-pw', echo.port);
    children.push(bob.nat);
    for (let i = 0; i < 20; i++) {
      const c = await socks5(bob.socksPort, { ip: TRACKER_IP, port: tracker.port });
      expect(c.reply, `connection ${i + 1}`).toBe(0);
      c.socket.destroy();
    }
    const over = await socks5(bob.socksPort, { ip: TRACKER_IP, port: tracker.port });
    expect(over.reply).toBe(0x02);
    over.socket.destroy();
    const m = await bob.nat.waitFor(/\{[^\n]*"reason":"rate-limited"[^\n]*\}/);
    expect(JSON.parse(m[0])).toMatchObject({
      event: 'outbound',
      state: 'refused',
      socksReply: 2,
      error: expect.stringMatching(/20 outbound connections in the last minute/),
    });
    // alice's rate is her own
    const a = await socks5(alice.socksPort, { ip: TRACKER_IP, port: tracker.port });
    expect(a.reply).toBe(0);
    a.socket.destroy();
    await bob.nat.stop();
  });

  test('anonymous (rendezvous-tier) credentials get no public port and so no outbound proxy: exit 1, the refusal printed', async () => {
    const anon = anonymousRelayCredentials('S3CRET-S3CRET', 'a'.repeat(32), 600, Date.now());
    const nat = start([
      NAT_CLI,
      'expose',
      `127.0.0.1:${echo.port}`,
      '--public',
      '--rendezvous',
      srv.url,
      '--user',
      `${anon.username}:${anon.password}`,
      '--outbound-socks',
      '127.0.0.1:0',
    ]);
    children.push(nat);
    expect(await nat.exited()).toBe(1);
    expect(nat.err()).toMatch(/anonymous relay credentials/);
    expect(nat.err()).not.toMatch(/outbound SOCKS5 proxy on/);
  });

  test('--outbound-socks on a non-loopback address is a usage error (exit 2); without --public too', async () => {
    const a = start([NAT_CLI, 'expose', '8080', '--public', '--rendezvous', srv.url, '--user', 'alice:alice-pw', '--outbound-socks', '0.0.0.0:1080']);
    children.push(a);
    expect(await a.exited()).toBe(2);
    expect(a.err()).toMatch(/loopback only/);
    const b = start([NAT_CLI, 'expose', '8080', '--outbound-socks', '127.0.0.1:0']);
    children.push(b);
    expect(await b.exited()).toBe(2);
    expect(b.err()).toMatch(/--outbound-socks goes with --public/);
  });
});

describe('nat-server without --expose-outbound', () => {
  test('refuses every outbound connection with reason disabled (SOCKS 0x02), and the client says which flag turns it on', async () => {
    const echo = await echoServer();
    const tracker = await startTracker(TRACKER_IP);
    const srv = await startServer(['--allow-peer', `${TRACKER_IP}/32`, '--user', 'alice:alice-pw']);
    const alice = await startExpose(srv.url, 'alice:alice-pw', echo.port).catch(async (e: unknown) => {
      await srv.server.stop();
      throw e;
    });
    try {
      const r = await socks5(alice.socksPort, { ip: TRACKER_IP, port: tracker.port });
      expect(r.reply).toBe(0x02);
      r.socket.destroy();
      const m = await alice.nat.waitFor(/\{[^\n]*"state":"refused"[^\n]*\}/);
      expect(JSON.parse(m[0])).toMatchObject({ reason: 'disabled', socksReply: 2, error: expect.stringMatching(/--expose-outbound/) });
      expect(tracker.seen).toEqual([]);
    } finally {
      await alice.nat.stop();
      await srv.server.stop();
      tracker.server.close();
      echo.server.close();
    }
  });
});

test('config: exposeOutbound needs exposePorts; the limits are whole numbers of at least 1', () => {
  const base = { listen: ['127.0.0.1'], rendezvousPort: 0, users: ['a:b'] };
  expect(() => resolveConfig({}, { ...base, exposeOutbound: true }, 'flags')).toThrow(/--expose-outbound.*--expose-ports/s);
  expect(() => resolveConfig({ exposeOutboundPerSession: 0 }, { ...base, exposePorts: '20000', exposeOutbound: true }, 'flags')).toThrow(
    /exposeOutboundPerSession/,
  );
  const c = resolveConfig({}, { ...base, exposePorts: '20000' }, 'flags');
  expect([c.exposeOutbound, c.exposeOutboundPerSession, c.exposeOutboundPerMinute, c.exposeOutboundTotal, c.exposeOutboundTimeout]).toEqual([
    false,
    16,
    30,
    1000,
    10,
  ]);
});
