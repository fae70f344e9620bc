/** Shared pieces of the tunnel suites: target services, a line-capturing Io, hashing clients. */
import { createHash, randomBytes } from 'node:crypto';
import { type Server, type Socket, connect, createServer } from 'node:net';
import { Writable } from 'node:stream';
import { runCli } from '@nat/cli';

/** A TCP service: `sink` hashes what it receives and, after the client's half-close, answers the hex SHA-256 and closes. */
export async function startHashService(host = '127.0.0.1'): Promise<{ server: Server; port: number; connections: () => number }> {
  let connections = 0;
  const server = createServer({ allowHalfOpen: true }, (s) => {
    connections++;
    const h = createHash('sha256');
    s.on('data', (d) => h.update(d));
    s.on('end', () => s.end(h.digest('hex')));
    s.on('error', () => {});
  });
  await new Promise<void>((r) => server.listen(0, host, r));
  return { server, port: (server.address() as { port: number }).port, connections: () => connections };
}

/** Sends `data` to host:port, half-closes, and resolves with what came back (as text) once the peer closes. */
export function roundTrip(port: number, data: Buffer, host = '127.0.0.1'): Promise<string> {
  return new Promise((resolve, reject) => {
    const s: Socket = connect({ host, port, allowHalfOpen: true });
    const chunks: Buffer[] = [];
    s.on('data', (d) => chunks.push(d));
    s.on('end', () => {
      s.end();
      resolve(Buffer.concat(chunks).toString());
    });
    s.on('error', reject);
    s.on('connect', () => {
      let off = 0;
      const pump = (): void => {
        while (off < data.length) {
          const chunk = data.subarray(off, off + 256 * 1024);
          off += chunk.length;
          if (!s.write(chunk)) return void s.once('drain', pump);
        }
        s.end();
      };
      pump();
    });
  });
}

export const sha256 = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

/** A deterministic-enough large payload with a marker repeated through it. */
export function payloadWithMarker(bytes: number, marker: Buffer): Buffer {
  const b = randomBytes(bytes);
  for (let off = 0; off + marker.length <= bytes; off += 4096) marker.copy(b, off);
  return b;
}

/** An Io that records stdout and stderr, with a way to wait for a line. */
export function capture() {
  let out = '';
  let err = '';
  const waiters = new Set<() => void>();
  const wake = (): void => {
    for (const w of waiters) w();
  };
  const stdout = new Writable({
    write(c, _e, cb) {
      out += String(c);
      wake();
      cb();
    },
  });
  const stderr = new Writable({
    write(c, _e, cb) {
      err += String(c);
      wake();
      cb();
    },
  });
  /** The first stdout line (JSON status line) matching `pred`, within `ms`. */
  const waitFor = async (pred: (line: Record<string, unknown>) => boolean, ms = 15_000): Promise<Record<string, unknown>> => {
    const deadline = Date.now() + ms;
    for (;;) {
      for (const l of out.split('\n')) {
        if (!l.startsWith('{')) continue;
        const j = JSON.parse(l) as Record<string, unknown>;
        if (pred(j)) return j;
      }
      if (Date.now() > deadline) throw new Error(`no matching status line within ${ms} ms; stdout:\n${out}\nstderr:\n${err}`);
      await new Promise<void>((r) => {
        waiters.add(r);
        setTimeout(() => {
          waiters.delete(r);
          r();
        }, 50);
      });
    }
  };
  const events = (): Array<Record<string, unknown>> =>
    out
      .split('\n')
      .filter((l) => l.startsWith('{'))
      .map((l) => JSON.parse(l) as Record<string, unknown>);
  return { io: { stdout, stderr }, out: () => out, err: () => err, waitFor, events };
}

/** Runs `nat` commands in-process with captured output; `stopAll()` aborts every one and waits for them. */
export function cliRunner() {
  const stops: AbortController[] = [];
  const runs: Promise<number>[] = [];
  const start = (args: string[]) => {
    const io = capture();
    const stop = new AbortController();
    stops.push(stop);
    const done = runCli(args, io.io, stop.signal);
    runs.push(done);
    return { ...io, stop, done };
  };
  const stopAll = async (): Promise<void> => {
    for (const s of stops) s.abort();
    await Promise.allSettled(runs);
  };
  return { start, stopAll };
}
