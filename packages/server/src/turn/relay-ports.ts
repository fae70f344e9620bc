import { type Socket, createSocket } from 'node:dgram';
import { type Server as NetServer, createServer as createTcpServer } from 'node:net';
import { ipFamily } from '@nat/protocol';
import { literalLookup } from '../udp-lookup.js';

/** The relay's port range (RFC 8656 section 7.2 suggests 49152-65535). */
export interface RelayPortRange {
  readonly min: number;
  readonly max: number;
}

export const DEFAULT_RELAY_PORTS: RelayPortRange = { min: 49152, max: 65535 };

function bind(ip: string, port: number): Promise<Socket | undefined> {
  return new Promise((resolve) => {
    const family = ipFamily(ip);
    const socket = createSocket({ type: family === 'IPv6' ? 'udp6' : 'udp4', ipv6Only: family === 'IPv6', recvBufferSize: 1 << 20, lookup: literalLookup });
    socket.once('error', () => {
      socket.close();
      resolve(undefined);
    });
    socket.bind({ address: ip, port, exclusive: true }, () => {
      socket.removeAllListeners('error');
      resolve(socket);
    });
  });
}

/**
 * Binds relay sockets in a port range: random ports (so relayed addresses are hard to guess),
 * even ones on request, and port + 1 held under a RESERVATION-TOKEN for 30 s (RFC 8656 section
 * 7.2, EVEN-PORT with the R bit).
 */
export class RelayPorts {
  readonly #range: RelayPortRange;
  readonly #reservations = new Map<string, { socket: Socket; timer: NodeJS.Timeout }>();

  constructor(range: RelayPortRange = DEFAULT_RELAY_PORTS) {
    this.#range = range;
  }

  /**
   * Binds a relay socket on `ip`. With `reserveNext`, also binds port + 1 and returns it as `next`
   * (hand it to {@link reserve}); with `token`, returns the socket reserved under it.
   */
  async open(ip: string, options: { even?: boolean; reserveNext?: boolean; token?: Uint8Array } = {}): Promise<{ socket: Socket; next?: Socket } | undefined> {
    if (options.token) {
      const key = Buffer.from(options.token).toString('hex');
      const r = this.#reservations.get(key);
      if (!r) return undefined;
      clearTimeout(r.timer);
      this.#reservations.delete(key);
      return { socket: r.socket };
    }
    const { min, max } = this.#range;
    for (let attempt = 0; attempt < 40; attempt++) {
      let port = min + Math.floor(Math.random() * (max - min + 1));
      if (options.even || options.reserveNext) port &= ~1;
      if (port < min || (options.reserveNext && port + 1 > max)) continue;
      const socket = await bind(ip, port);
      if (!socket) continue;
      if (options.reserveNext) {
        const next = await bind(ip, port + 1);
        if (!next) {
          socket.close();
          continue;
        }
        return { socket, next };
      }
      return { socket };
    }
    return undefined;
  }

  /**
   * Listens on a random TCP port of the range on `ip`: the relayed address of an RFC 6062 TCP
   * allocation. Undefined when no port could be had.
   */
  async openTcp(ip: string): Promise<NetServer | undefined> {
    const { min, max } = this.#range;
    for (let attempt = 0; attempt < 40; attempt++) {
      const port = min + Math.floor(Math.random() * (max - min + 1));
      const server = createTcpServer();
      const ok = await new Promise<boolean>((resolve) => {
        server.once('error', () => resolve(false));
        server.listen({ host: ip, port, exclusive: true }, () => resolve(true));
      });
      if (ok) return server;
    }
    return undefined;
  }

  /** Holds a socket (the `next` of an `open`) under a RESERVATION-TOKEN for 30 s. */
  reserve(token: Uint8Array, socket: Socket): void {
    const key = Buffer.from(token).toString('hex');
    const timer = setTimeout(() => {
      this.#reservations.delete(key);
      socket.close();
    }, 30_000);
    timer.unref();
    this.#reservations.set(key, { socket, timer });
  }

  close(): void {
    for (const { socket, timer } of this.#reservations.values()) {
      clearTimeout(timer);
      socket.close();
    }
    this.#reservations.clear();
  }
}
