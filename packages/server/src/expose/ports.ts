/**
 * The public ports of an expose service: requests (quota reserved before any await), binding,
 * attaching a port to its client's session, holding it for a disconnected client, releasing it.
 */
import {
  type Cidr,
  EXPOSE_VERSION,
  formatTransportAddress,
  type ExposeControlMessage,
  type ExposeRefusal,
  type ExposeRequest,
  type ExposeTransport,
  ipFamily,
} from '@nat/protocol';
import type { ServerEventSink } from '../events.js';
import type { Logger } from '../logger.js';
import { bindPublicPort, bindRefusal } from './bind.js';
import { type ExposeCluster, type ExposePortAddress, clusterHost } from './cluster.js';
import { type ResolvedExposeLimits, parseCidrs } from './options.js';
import { type PublicSide, addressOf } from './public-side.js';
import type { Exposure, Session } from './session.js';
import { ShareCounter } from './shares.js';
import type { ExposeCounters } from './stats.js';
import { UdpFlowShares } from './udp-flows.js';

export const keyOf = (t: ExposeTransport, port: number): string => `${t}:${port}`;

/** What the port table needs from the service. */
export interface PortTableDeps {
  readonly limits: ResolvedExposeLimits;
  readonly range: { readonly min: number; readonly max: number };
  /** The address public ports are bound on, and the one announced to clients. */
  readonly host: string;
  readonly publicIp: string;
  readonly publicSide: PublicSide;
  readonly stats: ExposeCounters;
  readonly log: Logger;
  readonly events: ServerEventSink;
  /** Sends a control message to a session's client. */
  readonly send: (s: Session, m: ExposeControlMessage) => void;
  /** True once the service is closing: nothing new is bound. */
  readonly closing: () => boolean;
  /** The per-user count and the owners shared with the other nodes, if any. */
  readonly cluster?: ExposeCluster | undefined;
}

/** The public ports, bound and being bound, and each user's share of them. */
export class PortTable {
  readonly exposures = new Map<string, Exposure>();
  /** Ports per user (bound and being bound). */
  readonly #ports = new ShareCounter();
  /** Ports being bound now (`tcp:20001`): another request skips them. */
  readonly #binding = new Set<string>();
  readonly #d: PortTableDeps;
  /** The public address as the cluster's keys name it. */
  readonly #host: string;
  /** The last cluster reservation id given. */
  #reservations = 0;

  constructor(deps: PortTableDeps) {
    this.#d = deps;
    this.#host = clusterHost(deps.publicIp);
  }

  #refuse(s: Session, m: ExposeRequest, code: ExposeRefusal, message: string): void {
    this.#d.stats.refused++;
    this.#d.log.debug({ user: s.user, source: s.source, code }, 'expose: request refused');
    this.#d.send(s, { v: EXPOSE_VERSION, type: 'refused', ref: m.id, code, message });
  }

  /** An `expose` request of authenticated session `s`; `advertised`: the peer id the owner lookup tells (its proof checked). */
  async request(s: Session, m: ExposeRequest, advertised?: string): Promise<void> {
    const user = s.user!;
    const { min, max } = this.#d.range;
    let allow: Cidr[];
    let deny: Cidr[];
    try {
      allow = parseCidrs(m.allow);
      deny = parseCidrs(m.deny);
    } catch (e) {
      return this.#refuse(s, m, 'bad-message', (e as Error).message);
    }
    if (m.port !== undefined) {
      if (m.port < min || m.port > max) return this.#refuse(s, m, 'out-of-range', `port ${m.port} is outside this server's range ${min}-${max}`);
      const existing = this.exposures.get(keyOf(m.transport, m.port));
      if (existing !== undefined) {
        if (existing.user !== user) return this.#refuse(s, m, 'taken', `${m.transport} port ${m.port} is held by another user of this server`);
        // The same user again (a reconnect, or a newer connection): it gets the port back.
        this.#attach(existing, s, allow, deny);
        existing.advertised = advertised;
        this.#tell(existing);
        return this.#grant(s, m, existing);
      }
    }
    // Reserved now, before any await: requests of one write cannot all pass the check first.
    const quota = this.#d.limits.portsPerUser;
    if (!this.#ports.take(user, quota)) {
      this.#d.events({ type: 'refused', service: 'expose', cause: 'user-quota', source: s.source, user, pool: 'ports' });
      return this.#refuse(s, m, 'over-quota', `${user} already holds ${this.#ports.count(user)} ports (at most ${quota})`);
    }
    const reservation = await this.#reserveAcross(s, m, user);
    if (reservation === false) return void this.#ports.give(user);
    const e = await this.#bindNew(s, m, { user, allow, deny, reservation });
    if (e === undefined) {
      this.#ports.give(user);
      if (reservation !== undefined) this.#d.cluster?.release(reservation);
    } else {
      e.advertised = advertised;
      this.#tell(e);
    }
  }

  /**
   * The cluster-wide reservation of a request the local count admitted (awaited before any port
   * is bound): its id, undefined without a cluster, or false when refused (answered here) or
   * when the session or the service went away meanwhile.
   */
  async #reserveAcross(s: Session, m: ExposeRequest, user: string): Promise<number | undefined | false> {
    const cluster = this.#d.cluster;
    if (cluster === undefined) return undefined;
    const id = ++this.#reservations;
    const quota = this.#d.limits.portsPerUser;
    const r = await cluster.reserve(id, user, quota);
    if (r === undefined) {
      if (!s.closed && !this.#d.closing()) return id;
      cluster.release(id);
    } else if (r === 'over-quota') {
      this.#d.events({ type: 'refused', service: 'expose', cause: 'user-quota', source: s.source, user, pool: 'ports' });
      this.#refuse(s, m, 'over-quota', `${user} already holds ${quota} ports on this server's nodes together (at most ${quota})`);
    } else {
      this.#refuse(s, m, 'unavailable', 'the state this server shares with its other nodes did not answer; try again later');
    }
    return false;
  }

  /** Where exposure `e` is, as the cluster names it. */
  #at(e: Exposure): ExposePortAddress {
    return { host: this.#host, transport: e.transport, port: e.port };
  }

  /** Tells the other nodes who owns `e` while its advertised owner is attached; withdraws it otherwise. */
  #tell(e: Exposure): void {
    const cluster = this.#d.cluster;
    if (cluster === undefined) return;
    if (e.advertised !== undefined && e.session !== undefined && this.exposures.get(e.key) === e)
      cluster.advertise(this.#at(e), { peer: e.advertised, address: formatTransportAddress(addressOf(this.#d.publicIp, e.port)) });
    else cluster.withdraw(this.#at(e));
  }

  /** The ports to try for a request: the one asked, or up to 64 free ones of the range from a random start. */
  #candidates(m: ExposeRequest): number[] {
    if (m.port !== undefined) return [m.port];
    const { min, max } = this.#d.range;
    const free = (p: number): boolean => !this.exposures.has(keyOf(m.transport, p)) && !this.#binding.has(keyOf(m.transport, p));
    const candidates: number[] = [];
    const span = max - min + 1;
    const start = Math.floor(Math.random() * span);
    for (let i = 0; i < span && candidates.length < 64; i++) if (free(min + ((start + i) % span))) candidates.push(min + ((start + i) % span));
    return candidates;
  }

  /** Binds a new public port for a request whose quota is reserved; undefined when none was bound (refused, or the session went away). */
  async #bindNew(
    s: Session,
    m: ExposeRequest,
    r: { user: string; allow: Cidr[]; deny: Cidr[]; reservation: number | undefined },
  ): Promise<Exposure | undefined> {
    const { user, allow, deny } = r;
    let errno: string | undefined;
    for (const port of this.#candidates(m)) {
      const key = keyOf(m.transport, port);
      if (this.#binding.has(key)) continue; // another request of this server is binding it now
      this.#binding.add(key);
      const { tcp, udp, error } = await bindPublicPort(m.transport, this.#d.host, port).finally(() => this.#binding.delete(key));
      if (error !== undefined) errno = error;
      if (tcp === undefined && udp === undefined) continue;
      if (s.closed || this.exposures.has(key) || this.#d.closing()) {
        // The session went away, or another request won the port while binding.
        tcp?.close();
        udp?.close();
        if (s.closed || this.#d.closing()) return undefined;
        continue;
      }
      const e: Exposure = {
        key,
        transport: m.transport,
        port,
        user,
        session: undefined,
        allow,
        deny,
        conns: new Set(),
        sources: new ShareCounter(),
        ...(udp ? { flows: new UdpFlowShares(this.#d.limits.connectionsPerSource) } : {}),
        ...(tcp ? { tcp } : {}),
        ...(udp ? { udp } : {}),
        ...(r.reservation === undefined ? {} : { reservation: r.reservation }),
      };
      this.#opened(e);
      this.#attach(e, s, allow, deny);
      this.#grant(s, m, e);
      return e;
    }
    this.#unbound(s, m, errno);
    return undefined;
  }

  /** A new exposure is bound: it enters the table and its public port is served. */
  #opened(e: Exposure): void {
    const side = this.#d.publicSide;
    this.exposures.set(e.key, e);
    if (e.tcp) e.tcp.on('connection', (c) => side.inbound(e, c));
    if (e.udp) e.udp.on('message', (msg, rinfo) => side.datagram(e, msg, addressOf(rinfo.address, rinfo.port)));
    const address = addressOf(this.#d.publicIp, e.port);
    this.#d.events({ type: 'expose-port-opened', user: e.user, name: e.key, address, protocol: e.transport });
  }

  /** No port could be bound for `m`: the refusal says why. */
  #unbound(s: Session, m: ExposeRequest, errno: string | undefined): void {
    const { min, max } = this.#d.range;
    if (m.port === undefined) return this.#refuse(s, m, 'unavailable', `no free ${m.transport} port in ${min}-${max}`);
    // Bound by the operating system's refusal, or won (or being bound) by another request.
    const r =
      errno !== undefined
        ? bindRefusal(m.transport, m.port, errno)
        : { code: 'taken' as const, message: `${m.transport} port ${m.port} is held by another user of this server` };
    this.#refuse(s, m, r.code, r.message);
  }

  #grant(s: Session, m: ExposeRequest, e: Exposure): void {
    this.#d.stats.granted++;
    const ip = this.#d.publicIp;
    const host = ipFamily(ip) === 'IPv6' ? `[${ip}]` : ip;
    this.#d.send(s, { v: EXPOSE_VERSION, type: 'exposed', ref: m.id, transport: e.transport, port: e.port, address: `${host}:${e.port}` });
    this.#d.log.info({ user: e.user, transport: e.transport, port: e.port }, 'expose: port granted');
  }

  #attach(e: Exposure, s: Session, allow: Cidr[], deny: Cidr[]): void {
    clearTimeout(e.graceTimer);
    e.graceTimer = undefined;
    if (e.session !== undefined && e.session !== s) e.session.exposures.delete(e);
    e.session = s;
    e.allow = allow;
    e.deny = deny;
    s.exposures.add(e);
    if (e.udp !== undefined) this.#d.publicSide.openUdpStream(e, s);
  }

  /** An `unexpose` of session `s`: the port goes when it is `s`'s. */
  unexpose(s: Session, transport: ExposeTransport, port: number): void {
    const e = this.exposures.get(keyOf(transport, port));
    if (e !== undefined && e.session === s) {
      s.exposures.delete(e);
      void this.release(e);
    }
  }

  /** The client went away: the port stays bound, for it alone, for the grace period. */
  hold(e: Exposure): void {
    e.session = undefined;
    e.udpStream = undefined;
    this.#tell(e);
    clearTimeout(e.graceTimer);
    e.graceTimer = setTimeout(() => void this.release(e), this.#d.limits.graceMs);
    e.graceTimer.unref();
  }

  /** Closes a public port and everything on it. */
  async release(e: Exposure): Promise<void> {
    clearTimeout(e.graceTimer);
    if (this.exposures.get(e.key) === e) {
      this.exposures.delete(e.key);
      this.#ports.give(e.user);
      if (e.reservation !== undefined) this.#d.cluster?.release(e.reservation);
      if (e.advertised !== undefined) this.#d.cluster?.withdraw(this.#at(e));
      this.#d.events({ type: 'expose-port-closed', user: e.user, name: e.key, address: addressOf(this.#d.publicIp, e.port), protocol: e.transport });
    }
    e.session?.exposures.delete(e);
    e.session = undefined;
    for (const c of e.conns) c.destroy();
    e.udpStream?.destroy();
    await new Promise<void>((resolve) => {
      if (e.tcp) e.tcp.close(() => resolve());
      else if (e.udp) e.udp.close(() => resolve());
      else resolve();
    });
  }
}
