import { createHash } from 'node:crypto';
import { PassThrough } from 'node:stream';
import { type AddressInfo, type Server, type Socket, connect, createServer } from 'node:net';
import { decode, encode } from '@msgpack/msgpack';
import { run as runServer, type RunningServer } from '@nat/server-app';
import { type ExposeHandle, type ExposeOptions, type RendezvousServer, attachExpose, startRendezvous, staticUsers } from '@nat/server';

/** Disjoint slices of 12000-32767 that {@link portBlock} draws from, one per vitest worker. */
const PORT_SLICES = 8;

/**
 * A random block of `n` ports inside 12000-32767 for one server (public ports are fixed numbers):
 * below Linux's ephemeral range (32768-60999), where outgoing connections take their local ports.
 * Vitest runs several test files at once, each in its own worker (VITEST_POOL_ID 1, 2, ...): each
 * worker draws from its own slice of the range, so that files running at the same time never
 * draw overlapping blocks.
 */
export function portBlock(n = 40): { min: number; max: number } {
  const size = Math.floor((32_768 - 12_000) / PORT_SLICES);
  const slice = (Math.max(1, Number(process.env.VITEST_POOL_ID) || 1) - 1) % PORT_SLICES;
  const min = 12_000 + slice * size + Math.floor(Math.random() * (size - n));
  return { min, max: min + n - 1 };
}

export const USERS = { alice: 'alice-pw', bob: 'bob-pw' } as const;

export interface TestServer {
  rv: RendezvousServer;
  expose: ExposeHandle;
  url: string;
  close(): Promise<void>;
}

/** A rendezvous service with the expose service on its HTTP server, on 127.0.0.1. */
export async function startExposeServer(opts: Partial<ExposeOptions> & { ports: { min: number; max: number }; rvPort?: number }): Promise<TestServer> {
  const rv = await startRendezvous({ host: '127.0.0.1', port: opts.rvPort ?? 0 });
  const expose = attachExpose(rv.httpServer, { host: '127.0.0.1', auth: staticUsers(USERS), ...opts });
  return {
    rv,
    expose,
    url: rv.url,
    async close() {
      await expose.close();
      await rv.close();
    },
  };
}

/** A TCP echo service (half-close aware: it ends when its peer ends). */
export async function echoServer(host = '127.0.0.1'): Promise<{ server: Server; port: number; sockets: Set<Socket> }> {
  const sockets = new Set<Socket>();
  const server = createServer({ allowHalfOpen: true }, (s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
    s.on('error', () => {});
    s.pipe(s);
  });
  await new Promise<void>((r) => server.listen(0, host, r));
  return { server, port: (server.address() as AddressInfo).port, sockets };
}

/**
 * A msgpack request/response service: each request is a 4-byte length and a msgpack map
 * `{ id, op: 'add' | 'upper', a, b, s }`; the answer is framed the same way, `{ id, result }`.
 */
export async function msgpackServer(): Promise<{ server: Server; port: number }> {
  const server = createServer((s) => {
    s.on('error', () => {});
    let buf = Buffer.alloc(0);
    s.on('data', (c: Buffer) => {
      buf = Buffer.concat([buf, c]);
      while (buf.length >= 4 && buf.length >= 4 + buf.readUInt32BE(0)) {
        const len = buf.readUInt32BE(0);
        const req = decode(buf.subarray(4, 4 + len)) as { id: number; op: string; a?: number; b?: number; s?: string };
        buf = buf.subarray(4 + len);
        const result = req.op === 'add' ? (req.a ?? 0) + (req.b ?? 0) : req.op === 'upper' ? String(req.s).toUpperCase() : null;
        const body = encode({ id: req.id, result });
        const head = Buffer.alloc(4);
        head.writeUInt32BE(body.length);
        s.write(Buffer.concat([head, body]));
      }
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return { server, port: (server.address() as AddressInfo).port };
}

/** Connects a bare node:net socket, sends `data`, half-closes, and collects everything until the end. */
export function roundTrip(port: number, data: Buffer, host = '127.0.0.1'): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const s = connect({ port, host, allowHalfOpen: true });
    const got: Buffer[] = [];
    s.on('data', (c: Buffer) => got.push(c));
    s.on('end', () => {
      s.end();
      resolve(Buffer.concat(got));
    });
    s.on('error', reject);
    s.end(data);
  });
}

export const sha256 = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

/** A TCP proxy whose connections can be cut (the control connection "drops"). */
export async function cuttableProxy(targetPort: number): Promise<{ port: number; cut(): void; close(): Promise<void> }> {
  const pairs = new Set<Socket>();
  const server = createServer((a) => {
    const b = connect(targetPort, '127.0.0.1');
    pairs.add(a).add(b);
    for (const s of [a, b]) {
      s.on('error', () => {});
      s.on('close', () => {
        pairs.delete(s);
        a.destroy();
        b.destroy();
      });
    }
    a.pipe(b).pipe(a);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    port: (server.address() as AddressInfo).port,
    cut: () => {
      for (const s of pairs) s.resetAndDestroy();
    },
    close: () =>
      new Promise<void>((r) => {
        for (const s of pairs) s.destroy();
        server.close(() => r());
      }),
  };
}

/** An `Io` for running the CLI in-process, with what it wrote to stdout and stderr as text. */
export function captureIo(): { io: { stdout: PassThrough; stderr: PassThrough }; out: () => string; err: () => string } {
  const stdout = new PassThrough();
  const stderr = new PassThrough();
  let out = '';
  let err = '';
  stdout.setEncoding('utf8');
  stderr.setEncoding('utf8');
  stdout.on('data', (d: string) => (out += d));
  stderr.on('data', (d: string) => (err += d));
  return { io: { stdout, stderr }, out: () => out, err: () => err };
}

/** An in-process `nat-server` with a rendezvous and public ports, and an echo service to expose. */
export interface ExposeApp {
  readonly server: RunningServer;
  /** The rendezvous URL `nat expose --public --rendezvous` takes. */
  readonly url: string;
  /** The server's `--expose-ports` block. */
  readonly range: { min: number; max: number };
  readonly echo: Awaited<ReturnType<typeof echoServer>>;
  close(): Promise<void>;
}

/**
 * `nat-server --listen 127.0.0.1` (UDP STUN on a free port, a rendezvous on a free port) exposing a
 * fresh block of `ports` public ports, with the users or secrets in `auth` (e.g. `--user alice:pw`),
 * and an echo service on 127.0.0.1.
 */
export async function startExposeApp(ports: number, auth: readonly string[]): Promise<ExposeApp> {
  const range = portBlock(ports);
  const s = captureIo();
  const args = ['--listen', '127.0.0.1', '--port', '0', '--no-alt-port', '--no-tcp', '--rendezvous-port', '0', '--expose-ports', `${range.min}-${range.max}`];
  const server = (await runServer([...args, ...auth, '--log-level', 'silent'], s.io))!;
  const url = /rendezvous (ws:\S+)/.exec(s.err())![1]!;
  const echo = await echoServer();
  return {
    server,
    url,
    range,
    echo,
    async close() {
      await server.stop();
      echo.server.close();
    },
  };
}
