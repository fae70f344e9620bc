/**
 * Outbound connections for exposed users (nat-server --expose-outbound): a client whose session
 * holds a public TCP port opens a stream with an outbound request (@nat/protocol's
 * `encodeOutboundRequest`); the server connects to the target from the address its public ports
 * are bound on, so that the far end (a tracker recording who announced) sees the server's public
 * address, and splices the connection onto the stream with backpressure both ways.
 *
 * Scoped like a relay: the target must pass the server's peer policy (TURN's default-denied
 * loopback, private and special ranges, `--allow-peer`/`--deny-peer`) and may not be one of the
 * server's own addresses; a cap per session, a rate of new connections per user, a cap for the
 * whole server and a connect timeout bound what one user can make the server do.
 */
import { lookup as dnsLookup } from 'node:dns/promises';
import { type Socket, connect as tcpConnect } from 'node:net';
import {
  type MuxStream,
  type OutboundRefusal,
  type OutboundTarget,
  type TransportAddress,
  decodeOutboundRequest,
  encodeOutboundReply,
  ipFamily,
  ipForms,
  readStreamPrefix,
  spliceTcp,
} from '@nat/protocol';
import type { ServerEventSink } from '../events.js';
import type { Logger } from '../logger.js';
import { PeerPolicy, type PeerPolicyInit } from '../turn/peer-policy.js';
import type { ResolvedExposeLimits } from './options.js';
import { addressOf } from './public-side.js';
import type { Session } from './session.js';

/** The `outbound` option of {@link ExposeOptions}. */
export interface ExposeOutboundOptions {
  /** Open outbound connections for exposed users. Default false: every request is refused (`disabled`). */
  readonly enabled?: boolean;
  /**
   * The peer policy, as the TURN relay's (`peers` of the TURN options): allow and deny prefixes,
   * the default-denied ranges, and the server's own service addresses and IPs, never targets.
   * The expose service adds its own address and public ports.
   */
  readonly peers?: PeerPolicyInit;
  /** Resolves a host name to its addresses. Default node:dns `lookup` (the system resolver), every address. */
  readonly lookup?: (host: string) => Promise<string[]>;
}

/** What the outbound side needs from the service. */
export interface OutboundDeps {
  readonly options: ExposeOutboundOptions;
  readonly limits: ResolvedExposeLimits;
  /** The address public ports are bound on: outbound sockets are bound to it (unless a wildcard). */
  readonly host: string;
  /** The address announced for public ports (the far end sees it behind a 1:1 NAT). */
  readonly publicIp: string;
  /** The bandwidth meter of a user (undefined: unlimited). */
  readonly meter: (user: string) => ((n: number) => number) | undefined;
  readonly events: ServerEventSink;
  readonly log: Logger;
}

class Refusal extends Error {
  constructor(
    readonly reason: OutboundRefusal,
    message: string,
  ) {
    super(message);
  }
}

/** The refusal for a connect error, by its code. */
function refusalOfError(e: NodeJS.ErrnoException, target: string): Refusal {
  const reason: OutboundRefusal =
    e.code === 'ECONNREFUSED'
      ? 'connection-refused'
      : e.code === 'EHOSTUNREACH' || e.code === 'EHOSTDOWN'
        ? 'host-unreachable'
        : e.code === 'ENETUNREACH' || e.code === 'ENETDOWN'
          ? 'network-unreachable'
          : e.code === 'ETIMEDOUT'
            ? 'timeout'
            : 'failed';
  return new Refusal(reason, `connecting to ${target}: ${e.code ?? e.message}`);
}

const WILDCARD = /^(0\.0\.0\.0|::)$/;

/** Opens and carries the outbound connections of every session of one expose service. */
export class OutboundSide {
  readonly #d: OutboundDeps;
  readonly #policy: PeerPolicy;
  readonly #ownIps = new Set<string>();
  readonly #perSession = new WeakMap<Session, number>();
  /** Start times (performance.now()) of each user's connections in the last minute. */
  readonly #recent = new Map<string, number[]>();
  #open = 0;
  readonly #sockets = new Set<Socket>();

  constructor(deps: OutboundDeps) {
    this.#d = deps;
    this.#policy = new PeerPolicy(deps.options.peers ?? {});
    for (const ip of [deps.host, deps.publicIp, ...(deps.options.peers?.ownIps ?? [])])
      if (!WILDCARD.test(ip)) for (const f of ipForms(ip)) this.#ownIps.add(f);
  }

  /** Outbound connections open now. */
  get size(): number {
    return this.#open;
  }

  /** A stream the client opened after authenticating: an outbound request. */
  handle(s: Session, stream: MuxStream): void {
    stream.on('error', () => {});
    const timer = setTimeout(() => stream.destroy(), this.#d.limits.authTimeoutMs);
    timer.unref();
    const decode = (b: Uint8Array): { value: OutboundTarget; length: number } | undefined => {
      const r = decodeOutboundRequest(b);
      return r && { value: r.target, length: r.length };
    };
    readStreamPrefix(stream, decode, 300).then(
      (target) => {
        clearTimeout(timer);
        void this.#serve(s, stream, target);
      },
      () => {
        clearTimeout(timer);
        stream.destroy();
      },
    );
  }

  /** Closes every outbound connection (the service is closing). */
  close(): void {
    for (const socket of this.#sockets) socket.destroy();
  }

  async #serve(s: Session, stream: MuxStream, target: OutboundTarget): Promise<void> {
    const user = s.user ?? '?';
    const text = `${target.host.includes(':') ? `[${target.host}]` : target.host}:${target.port}`;
    const refuse = (e: Refusal): void => {
      if (e.reason === 'forbidden') this.#d.events({ type: 'refused', service: 'expose', cause: 'peer-denied', source: s.source, user, pool: 'outbound' });
      this.#d.events({ type: 'expose-outbound', user, state: 'refused', target: text, reason: e.reason });
      this.#d.log.debug({ user, target: text, reason: e.reason, message: e.message }, 'expose: outbound connection refused');
      if (!stream.destroyed) stream.end(encodeOutboundReply({ ok: false, reason: e.reason, message: e.message }));
    };
    let taken = false;
    try {
      this.#admit(s, user);
      taken = true;
      const address = await this.#resolve(target, text);
      const socket = await this.#connect(address, text);
      if (stream.destroyed) {
        socket.destroy();
        throw new Refusal('failed', 'the client closed the stream');
      }
      this.#carry(s, user, stream, socket, text, address);
    } catch (e) {
      if (taken) this.#release(s);
      if (e instanceof Refusal) refuse(e);
      else refuse(new Refusal('failed', (e as Error).message));
    }
  }

  /** Takes a slot of the session, the user's rate and the server, or throws the refusal. */
  #admit(s: Session, user: string): void {
    const { limits, options, events } = this.#d;
    if (options.enabled !== true) throw new Refusal('disabled', 'this server does not open outbound connections (nat-server --expose-outbound is off)');
    if (![...s.exposures].some((e) => e.transport === 'tcp'))
      throw new Refusal('not-exposed', 'only a session that holds a public TCP port may open outbound connections; expose one first');
    const refused = (cause: 'global-cap' | 'user-quota'): void =>
      events({ type: 'refused', service: 'expose', cause, source: s.source, user, pool: 'outbound' });
    const mine = this.#perSession.get(s) ?? 0;
    if (mine >= limits.outboundPerSession) {
      refused('user-quota');
      throw new Refusal('session-cap', `${mine} outbound connections open on this session (at most ${limits.outboundPerSession})`);
    }
    if (this.#open >= limits.outboundTotal) {
      refused('global-cap');
      throw new Refusal('global-cap', `the server holds ${this.#open} outbound connections (at most ${limits.outboundTotal})`);
    }
    const now = performance.now();
    const recent = (this.#recent.get(user) ?? []).filter((t) => now - t < 60_000);
    if (recent.length >= limits.outboundPerMinute) {
      this.#recent.set(user, recent);
      refused('user-quota');
      const wait = Math.ceil((60_000 - (now - recent[0]!)) / 1000);
      throw new Refusal(
        'rate-limited',
        `${recent.length} outbound connections in the last minute (at most ${limits.outboundPerMinute}); the next in ${wait} s`,
      );
    }
    recent.push(now);
    this.#recent.set(user, recent);
    this.#perSession.set(s, mine + 1);
    this.#open++;
  }

  #release(s: Session): void {
    this.#perSession.set(s, Math.max(0, (this.#perSession.get(s) ?? 1) - 1));
    this.#open--;
  }

  /** The address to connect to: the target's IP, or the first of its name's addresses the policy allows. */
  async #resolve(target: OutboundTarget, text: string): Promise<TransportAddress> {
    let ips: string[];
    if (ipFamily(target.host) !== undefined) ips = [target.host];
    else {
      try {
        ips = await (this.#d.options.lookup ?? ((h) => dnsLookup(h, { all: true }).then((a) => a.map((x) => x.address))))(target.host);
      } catch (e) {
        throw new Refusal('host-unreachable', `${target.host} does not resolve on the server (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
      }
    }
    const family = WILDCARD.test(this.#d.host) ? undefined : ipFamily(this.#d.host);
    const reachable = family === undefined ? ips : ips.filter((ip) => ipFamily(ip) === family);
    if (reachable.length === 0)
      throw new Refusal('network-unreachable', `${text} has no ${family} address (${ips.join(', ') || 'none'}), and the server's public address is ${family}`);
    let why = '';
    for (const ip of reachable) {
      const address: TransportAddress = { family: ipFamily(ip)!, address: ip, port: target.port };
      if (ipForms(ip).some((f) => this.#ownIps.has(f)) || this.#policy.isService(address)) {
        why ||= `${ip} is this server's own address`;
        continue;
      }
      const verdict = this.#policy.check(ip);
      if (verdict.allowed) return address;
      why ||= `${ip} is in ${verdict.rule}, which this server refuses as a target (its operator can allow it: nat-server --allow-peer ${verdict.rule})`;
    }
    throw new Refusal('forbidden', `${text}: ${why}`);
  }

  /** Connects from the public ports' address, within the connect timeout. */
  #connect(to: TransportAddress, text: string): Promise<Socket> {
    const { host, limits } = this.#d;
    return new Promise((resolve, reject) => {
      const socket = tcpConnect({
        host: to.address,
        port: to.port,
        ...(WILDCARD.test(host) ? {} : { localAddress: host }),
        allowHalfOpen: true,
        noDelay: true,
      });
      const timer = setTimeout(() => {
        socket.destroy();
        reject(new Refusal('timeout', `${text} did not answer within ${limits.outboundConnectTimeoutMs} ms`));
      }, limits.outboundConnectTimeoutMs);
      socket.once('connect', () => {
        clearTimeout(timer);
        socket.removeAllListeners('error');
        resolve(socket);
      });
      socket.once('error', (e: NodeJS.ErrnoException) => {
        clearTimeout(timer);
        reject(refusalOfError(e, text));
      });
    });
  }

  #carry(s: Session, user: string, stream: MuxStream, socket: Socket, target: string, address: TransportAddress): void {
    const { events, limits, publicIp, host } = this.#d;
    this.#sockets.add(socket);
    socket.on('error', () => {});
    socket.setTimeout(limits.idleTimeoutMs, () => socket.destroy());
    const local = addressOf(socket.localAddress, socket.localPort);
    // Behind a 1:1 NAT the far end sees the announced public address, not the bound one.
    const bound = local.address === host && ipFamily(publicIp) === local.family ? { ...local, address: publicIp } : local;
    stream.write(encodeOutboundReply({ ok: true, bound }));
    events({ type: 'expose-outbound', user, state: 'opened', target, address });
    const meter = this.#d.meter(user);
    spliceTcp(socket, stream, {
      ...(meter === undefined ? {} : { meterUp: meter, meterDown: meter }),
      onClose: (r) => {
        this.#sockets.delete(socket);
        this.#release(s);
        events({ type: 'expose-outbound', user, state: 'closed', target, address, bytesToPeer: r.down, bytesToClient: r.up });
      },
    });
  }
}
