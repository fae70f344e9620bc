/** Hand-made rendezvous connections for the governance tests: raw TCP and raw WebSocket upgrades from a chosen loopback alias. */
import { randomBytes } from 'node:crypto';
import { type Socket, connect } from 'node:net';

/** A raw WebSocket upgrade from `localAddress`; resolves once the 101 arrived (rejects on another answer). */
export function rawWebSocket(url: string, localAddress: string): Promise<Socket> {
  const u = new URL(url);
  return new Promise((resolve, reject) => {
    const s = connect({ host: u.hostname, port: Number(u.port), localAddress }, () => {
      const key = randomBytes(16).toString('base64');
      s.write(
        `GET / HTTP/1.1\r\nHost: ${u.host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: ${key}\r\nSec-WebSocket-Version: 13\r\n\r\n`,
      );
    });
    let head = '';
    const onData = (c: Buffer): void => {
      head += c.toString('latin1');
      if (!head.includes('\r\n\r\n')) return;
      s.off('data', onData);
      if (/^HTTP\/1\.1 101 /.test(head)) resolve(s);
      else reject(new Error(`no upgrade: ${head.split('\r\n')[0]}`));
    };
    s.on('data', onData);
    s.once('error', reject);
    s.once('close', () => reject(new Error('closed before the upgrade')));
  });
}

/** What became of a raw TCP connection within `ms`: closed by the server before any byte ('refused'), or still open. */
export interface Fate {
  readonly socket: Socket;
  /** Resolves with 'refused' (closed, nothing received), 'answered' (closed after bytes) or 'open' after `ms`. */
  readonly within: (ms: number) => Promise<'refused' | 'answered' | 'open'>;
  /** When the connection closed (Date.now()). */
  readonly closedAt: Promise<number>;
}

/** Opens a raw TCP connection from `localAddress` that sends nothing; resolves once connected (or refused). */
export function rawTcp(url: string, localAddress: string): Promise<Fate> {
  const u = new URL(url);
  return new Promise((resolve) => {
    const socket = connect({ host: u.hostname, port: Number(u.port), localAddress });
    socket.on('error', () => {});
    let received = 0;
    socket.on('data', (c: Buffer) => (received += c.length));
    const closedAt = new Promise<number>((r) => socket.once('close', () => r(Date.now())));
    const within = (ms: number): Promise<'refused' | 'answered' | 'open'> =>
      Promise.race([
        closedAt.then(() => (received > 0 ? ('answered' as const) : ('refused' as const))),
        new Promise<'open'>((r) => setTimeout(() => r('open'), ms)),
      ]);
    socket.once('connect', () => resolve({ socket, within, closedAt }));
    socket.once('close', () => resolve({ socket, within, closedAt }));
  });
}
