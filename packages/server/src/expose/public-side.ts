/**
 * The public side of an expose service: inbound TCP connections and UDP datagrams on a bound
 * public port, each carried to the client over its control connection (a yamux stream per TCP
 * connection, one datagram stream per UDP port).
 */
import type { Socket } from 'node:net';
import {
  type Cidr,
  ExposedDatagramReader,
  type MuxStream,
  type TransportAddress,
  encodeExposedDatagram,
  encodeStreamPreamble,
  ipFamily,
  sourceKey,
  spliceTcp,
} from '@nat/protocol';
import type { ServerEventSink } from '../events.js';
import type { Logger } from '../logger.js';
import { ByteBudget } from './budget.js';
import type { ResolvedExposeLimits } from './options.js';
import { type Exposure, type Session, sourceAllowed } from './session.js';
import type { ExposeCounters } from './stats.js';

/** A TransportAddress of a socket's address (IPv4-mapped IPv6 as IPv4). */
export function addressOf(ip: string | undefined, port: number | undefined): TransportAddress {
  const address = (ip ?? '0.0.0.0').replace(/^::ffff:(?=\d+\.)/, '');
  return { family: ipFamily(address) ?? 'IPv4', address, port: port ?? 0 };
}

/** What the public side needs from the service. */
export interface PublicSideDeps {
  readonly limits: ResolvedExposeLimits;
  /** Source prefixes refused on every port. */
  readonly deny: Cidr[];
  /** The address public ports are bound on. */
  readonly host: string;
  readonly stats: ExposeCounters;
  readonly log: Logger;
  readonly events: ServerEventSink;
}

/** Carries public connections and datagrams to the clients that exposed the ports. */
export class PublicSide {
  readonly #d: PublicSideDeps;
  readonly #budgets = new Map<string, ByteBudget>();

  constructor(deps: PublicSideDeps) {
    this.#d = deps;
  }

  /** The bandwidth meter of `user` (undefined when bandwidth is not limited). */
  meter(user: string): ((n: number) => number) | undefined {
    const rate = this.#d.limits.bandwidthPerUser;
    if (rate === 0) return undefined;
    let b = this.#budgets.get(user);
    if (b === undefined) {
      b = new ByteBudget(rate, performance.now());
      this.#budgets.set(user, b);
    }
    const budget = b;
    return (n) => budget.consume(n, performance.now());
  }

  /** Whether an inbound connection from `source` may take a slot of `e`; false after counting why not. */
  #admit(e: Exposure, address: string, from: string): boolean {
    const { stats, limits, deny, events, log } = this.#d;
    if (!sourceAllowed(deny, e, address)) {
      stats.connectionsDenied++;
      return false;
    }
    const refused = (cause: 'global-cap' | 'source-share'): false => {
      events({ type: 'refused', service: 'expose', cause, source: from, user: e.user, pool: 'connections' });
      return false;
    };
    if (e.conns.size >= limits.connectionsPerPort) {
      stats.connectionsOverLimit++;
      return refused('global-cap');
    }
    if (!e.sources.take(from, limits.connectionsPerSource)) {
      stats.connectionsOverShare++;
      log.debug({ port: e.port, source: from, share: limits.connectionsPerSource }, 'expose: inbound connection refused, source over its share of the port');
      return refused('source-share');
    }
    return true;
  }

  /** An inbound TCP connection on `e`'s public port. */
  inbound(e: Exposure, socket: Socket): void {
    socket.on('error', () => {});
    const source = addressOf(socket.remoteAddress, socket.remotePort);
    const from = sourceKey(source.address);
    const s = e.session;
    const { stats, limits, events } = this.#d;
    if (s === undefined || s.mux.closed) {
      stats.connectionsWhileHeld++;
      socket.destroy();
      return;
    }
    if (!this.#admit(e, source.address, from)) {
      socket.resetAndDestroy();
      return;
    }
    e.conns.add(socket);
    events({ type: 'expose-connection', user: e.user, name: e.key, source: from, state: 'opened' });
    socket.on('close', () => {
      e.conns.delete(socket);
      e.sources.give(from);
      events({ type: 'expose-connection', user: e.user, name: e.key, source: from, state: 'closed' });
    });
    socket.setTimeout(limits.idleTimeoutMs, () => {
      stats.idleClosed++;
      socket.destroy();
    });
    let stream: MuxStream;
    try {
      stream = s.mux.open();
    } catch {
      socket.destroy();
      return;
    }
    stream.write(encodeStreamPreamble({ kind: 'tcp', publicPort: e.port, source, destination: addressOf(socket.localAddress, socket.localPort) }));
    const meter = this.meter(e.user);
    spliceTcp(socket, stream, meter === undefined ? {} : { meterUp: meter, meterDown: meter });
  }

  /** Opens the datagram stream of UDP port `e` on session `s` (replacing the previous one). */
  openUdpStream(e: Exposure, s: Session): void {
    e.udpStream?.destroy();
    let stream: MuxStream;
    try {
      stream = s.mux.open();
    } catch {
      return;
    }
    e.udpStream = stream;
    stream.on('error', () => {});
    const local = addressOf(this.#d.host, e.port);
    stream.write(encodeStreamPreamble({ kind: 'udp', publicPort: e.port, source: local, destination: local }));
    const reader = new ExposedDatagramReader();
    const { stats } = this.#d;
    stream.on('data', (chunk: Buffer) => {
      try {
        reader.push(chunk, (to, payload) => {
          stats.datagramsOut++;
          const meter = this.meter(e.user);
          if (meter !== undefined && meter(payload.length) > 0) {
            stats.datagramsDropped++;
            return;
          }
          e.udp?.send(payload, to.port, to.address);
        });
      } catch {
        stream.destroy();
      }
    });
    stream.on('close', () => {
      if (e.udpStream === stream) e.udpStream = undefined;
    });
  }

  /** A datagram on UDP port `e` from `from`. */
  datagram(e: Exposure, msg: Buffer, from: TransportAddress): void {
    const { stats, deny } = this.#d;
    const stream = e.udpStream;
    // UDP keeps its semantics: a datagram the client cannot take now is dropped, not queued.
    if (stream === undefined || stream.destroyed || stream.writableNeedDrain || !sourceAllowed(deny, e, from.address)) {
      stats.datagramsDropped++;
      return;
    }
    if (e.flows !== undefined && !e.flows.admit(from.address, from.port, performance.now())) {
      stats.datagramsDropped++;
      stats.datagramsOverShare++;
      return;
    }
    const meter = this.meter(e.user);
    if (meter !== undefined && meter(msg.length) > 0) {
      stats.datagramsDropped++;
      return;
    }
    stats.datagramsIn++;
    stream.write(encodeExposedDatagram(from, msg));
  }
}
