/**
 * Hand-made expose control connections for the governance tests: a raw HTTP Upgrade from a chosen
 * loopback alias, a yamux session with the password handshake done by hand, and a nat-server child
 * process whose memory (RSS) the tests read.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { createHmac } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { type Socket, connect } from 'node:net';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  EXPOSE_PROTOCOL,
  EXPOSE_VERSION,
  type ExposeControlMessage,
  MuxSession,
  type MuxStream,
  MuxFlag,
  MuxType,
  encodeControlMessage,
  encodeMuxHeader,
  exposeSigningPayload,
  frameWriter,
  longTermKey,
  readControlMessages,
} from '@nat/protocol';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');

/** Opens a TCP connection to the rendezvous URL's host and port and sends the expose Upgrade; resolves once connected. */
export function rawUpgrade(url: string, localAddress?: string): Promise<Socket> {
  const u = new URL(url);
  return new Promise((res, rej) => {
    const s = connect({ host: u.hostname, port: Number(u.port), ...(localAddress ? { localAddress } : {}) }, () => {
      s.write(`GET /expose HTTP/1.1\r\nHost: ${u.host}\r\nUpgrade: ${EXPOSE_PROTOCOL}\r\nConnection: Upgrade\r\n\r\n`);
      res(s);
    });
    s.once('error', rej);
  });
}

/** A yamux ping (SYN) frame, or a SYN opening stream `id`. */
export const pingFrame = (value: number): Buffer => Buffer.from(encodeMuxHeader(MuxType.Ping, MuxFlag.SYN, 0, value >>> 0));
export const synFrame = (id: number): Buffer => Buffer.from(encodeMuxHeader(MuxType.WindowUpdate, MuxFlag.SYN, id, 0));

export interface RawSession {
  readonly socket: Socket;
  readonly mux: MuxSession;
  readonly control: MuxStream;
  /** Every control message received, in order. */
  readonly messages: ExposeControlMessage[];
  /** The 101 answer arrived (false: refused before the upgrade, e.g. 503). */
  readonly upgraded: () => boolean;
  /** The HTTP status line when the upgrade was refused. */
  readonly status: () => string;
  readonly closed: () => boolean;
  send(m: ExposeControlMessage): void;
  /** Resolves with the first message that `match` accepts (already received or future); rejects after `ms`. */
  waitFor(match: (m: ExposeControlMessage) => boolean, ms?: number): Promise<ExposeControlMessage>;
}

/** An expose control connection with the password handshake done by hand (nothing of @nat/client). */
export async function rawSession(url: string, user: string, password: string, localAddress?: string): Promise<RawSession> {
  const socket = await rawUpgrade(url, localAddress);
  socket.on('error', () => {});
  let head = Buffer.alloc(0);
  let upgraded = false;
  let status = '';
  let response = '';
  let closed = false;
  const messages: ExposeControlMessage[] = [];
  const waiters = new Set<() => void>();
  const notify = (): void => {
    for (const w of [...waiters]) w();
  };
  const mux = new MuxSession({ client: true, write: frameWriter(socket) });
  socket.on('data', (c: Buffer) => {
    if (upgraded) return mux.receive(c);
    head = Buffer.concat([head, c]);
    response = head.toString('latin1');
    const end = head.indexOf('\r\n\r\n');
    if (end < 0) return;
    status = head.subarray(0, head.indexOf('\r\n')).toString();
    upgraded = / 101 /.test(status);
    const rest = head.subarray(end + 4);
    if (upgraded && rest.length > 0) mux.receive(rest);
    notify();
  });
  socket.on('drain', () => mux.drain());
  socket.on('close', () => {
    closed = true;
    mux.lost();
    notify();
  });
  const control = mux.open();
  control.on('error', () => {});
  const send = (m: ExposeControlMessage): void => void control.write(encodeControlMessage(m));
  readControlMessages(
    control,
    (m) => {
      messages.push(m);
      if (m.type === 'challenge') {
        const key = longTermKey({ username: user, realm: m.realm, password, algorithm: 'SHA-256' });
        const mac = createHmac('sha256', key).update(exposeSigningPayload(m.nonce, user)).digest('base64url');
        send({ v: EXPOSE_VERSION, type: 'hello', auth: { method: 'password', username: user, mac } });
      }
      notify();
    },
    () => socket.destroy(),
  );
  const waitFor = (match: (m: ExposeControlMessage) => boolean, ms = 10_000): Promise<ExposeControlMessage> =>
    new Promise((res, rej) => {
      const check = (): void => {
        const m = messages.find(match);
        if (m !== undefined) {
          done();
          res(m);
        } else if (closed) {
          done();
          rej(new Error(`connection closed (${upgraded ? status : response || 'no HTTP answer'}); messages: ${JSON.stringify(messages)}`));
        }
      };
      const timer = setTimeout(() => {
        done();
        rej(new Error(`timeout; messages: ${JSON.stringify(messages)}`));
      }, ms);
      const done = (): void => {
        clearTimeout(timer);
        waiters.delete(check);
      };
      waiters.add(check);
      check();
    });
  return { socket, mux, control, messages, upgraded: () => upgraded, status: () => status, closed: () => closed, send, waitFor };
}

/** A nat-server child process (the built binary) with the rendezvous and expose services on 127.0.0.1. */
export interface ServerChild {
  readonly child: ChildProcess;
  readonly url: string;
  /** Resident memory of the child now, bytes. */
  rss(): number;
  stop(): Promise<void>;
}

export async function startServerChild(args: string[]): Promise<ServerChild> {
  const child = spawn(process.execPath, [join(ROOT, 'apps/server/dist/main.js'), ...args], { stdio: ['ignore', 'ignore', 'pipe'] });
  let err = '';
  child.stderr!.on('data', (d: Buffer) => (err += d.toString('utf8')));
  const url = await new Promise<string>((res, rej) => {
    const t = setInterval(() => {
      const m = /expose (ws:\/\/\S+?)\/?expose ports/.exec(err);
      if (m) {
        clearInterval(t);
        res(/rendezvous (ws:\S+)/.exec(err)![1]!);
      } else if (child.exitCode !== null) {
        clearInterval(t);
        rej(new Error(`nat-server exited ${child.exitCode}: ${err}`));
      }
    }, 20);
  });
  return {
    child,
    url,
    rss: () => Number(/VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${child.pid}/status`, 'utf8'))![1]) * 1024,
    stop: () =>
      new Promise<void>((res) => {
        if (child.exitCode !== null) return res();
        child.once('exit', () => res());
        child.kill('SIGKILL');
      }),
  };
}
