/**
 * The rendezvous protocol, apart from sockets: what each message of a registered or registering
 * connection does to presence, names and the relay scope, and what is answered. The service
 * ({@link ./service.ts}) owns the WebSocket server, the heartbeat and the connection pool.
 */
import { type KeyObject, createPublicKey, verify } from 'node:crypto';
import {
  type ClaimNameMessage,
  type RegisterMessage,
  type ResolveNameMessage,
  SIGNALLING_DIRECTIONS,
  SIGNALLING_VERSION,
  type SignallingIceServer,
  type SignallingMessage,
  anonymousRelayCredentials,
  peerIdFromPublicKey,
  registerSigningPayload,
  tryDecodeSignallingMessage,
  RENDEZVOUS_CLOSE_CODES,
} from '@nat/protocol';
import type { RawData } from 'ws';
import type { RefusalCause, ServerEventSink } from '../events.js';
import type { Logger } from '../logger.js';
import type { Admission } from './admission.js';
import type { RendezvousCluster } from './cluster.js';
import { ClusterLink } from './cluster-link.js';
import { type Connection, type OfflineCause, messageText } from './connection.js';
import { type ClaimRefusal, NameTable } from './names.js';
import type { ResolvedLimits, ResolvedTurn } from './options.js';
import { type RelayScope, recordSignalledCandidates } from './scope.js';
import type { RendezvousStats } from './stats.js';

/** The counters the service keeps itself (the rest are sizes of its tables). */
export type RendezvousCounters = Omit<RendezvousStats, 'connections' | 'registered' | 'names' | 'cluster'>;

const CLAIM_REFUSED: Record<ClaimRefusal, string> = {
  taken: 'belongs to another peer',
  'per-peer': 'cannot be claimed: this key holds the most names it may',
  'per-source': 'cannot be claimed: too many names claimed from this address lately; try later',
  full: 'cannot be claimed: the name table of this rendezvous is full',
};

/** The `refused` event cause of each claim refusal ('per-source' is a `rate-limited` event instead). */
const CLAIM_CAUSE: Record<Exclude<ClaimRefusal, 'per-source'>, RefusalCause> = { taken: 'name', 'per-peer': 'user-quota', full: 'global-cap' };

const RELAYED = new Set(
  Object.entries(SIGNALLING_DIRECTIONS)
    .filter(([, d]) => d === 'relayed')
    .map(([t]) => t),
);

/** What {@link Signalling} needs from the service. */
export interface SignallingDeps {
  readonly limits: ResolvedLimits;
  readonly turn: ResolvedTurn | undefined;
  readonly iceServers: readonly SignallingIceServer[];
  readonly admission: Admission;
  readonly scope: RelayScope | undefined;
  /** Other nodes sharing presence, names and signalling; undefined: a single node. */
  readonly cluster: RendezvousCluster | undefined;
  readonly log: Logger;
  readonly events: ServerEventSink;
  readonly stats: RendezvousCounters;
  /** A connection ended: it leaves the service's pool. */
  readonly forget: (c: Connection) => void;
}

/** Presence, registration, names and relaying of one rendezvous service. */
export class Signalling {
  /** Live presence. */
  readonly peers = new Map<string, Connection>();
  /** Claimed names, kept while their owner comes back within `nameTtlMs`; only the owner's key re-claims one. */
  readonly names: NameTable;
  readonly #d: SignallingDeps;
  /** Undefined on a single node. */
  readonly #cluster: ClusterLink | undefined;
  /** The secret the anonymous relay credentials are signed with (replaced by a reload). */
  #turnSecret: string | undefined;

  constructor(deps: SignallingDeps) {
    this.#d = deps;
    this.#turnSecret = deps.turn?.secret;
    this.names = new NameTable(deps.limits);
    this.#cluster =
      deps.cluster === undefined
        ? undefined
        : new ClusterLink(deps.cluster, {
            peers: this.peers,
            limits: deps.limits,
            stats: deps.stats,
            log: deps.log,
            replace: (c) => this.#replace(c),
            claimRefused: (c, m, refused) => this.#claimRefused(c, m, refused),
          });
  }

  /** Closes `c`: its peer id registered again, here or on another node (newest wins). */
  #replace(c: Connection): void {
    this.#d.stats.replaced++;
    this.drop(c, RENDEZVOUS_CLOSE_CODES.replaced, 'replaced by a newer connection', 'replaced');
  }

  /** Signs the credentials of registrations from now on with `secret` (a reload rotated it); those handed out stay valid as long as TURN accepts their secret. */
  setTurnSecret(secret: string): void {
    this.#turnSecret = secret;
  }

  /** Ends a connection on the server's initiative: presence goes at once, not after the close handshake. */
  drop(c: Connection, code: number, reason: string, cause: OfflineCause = 'closed'): void {
    c.offlineCause = cause;
    this.closed(c);
    if (code === 0) c.ws.terminate();
    else c.ws.close(code, reason);
  }

  /** The connection ended (or is being ended): its presence goes. Idempotent. */
  closed(c: Connection): void {
    if (c.closed) return;
    c.closed = true;
    clearTimeout(c.registerTimer);
    this.#d.forget(c);
    if (c.peerId !== undefined && this.peers.get(c.peerId) === c) {
      this.peers.delete(c.peerId);
      this.#cluster?.left(c, c.peerId);
      this.#d.log.debug({ peerId: c.peerId }, 'rendezvous peer left');
      this.#d.events({ type: 'peer-offline', peer: c.peerId, cause: c.offlineCause });
    }
  }

  /** One WebSocket message of `c`. */
  message(c: Connection, data: RawData, isBinary: boolean): void {
    if (c.closed) return;
    c.alive = true;
    if (!this.#takeToken(c)) return;
    const { stats } = this.#d;
    if (isBinary) {
      stats.badMessages++;
      return c.error('bad-message', 'signalling messages are text frames', undefined);
    }
    const text = messageText(data);
    const parsed = tryDecodeSignallingMessage(text, { maxBytes: this.#d.limits.maxMessageBytes });
    if (!parsed.ok) {
      stats.badMessages++;
      return c.error(parsed.code, parsed.error.message.slice(0, 512), parsed.ref);
    }
    const m = parsed.message;
    if (SIGNALLING_DIRECTIONS[m.type] === 'server-to-client') {
      stats.badMessages++;
      return c.error('bad-message', `a client does not send ${m.type}`, m.id);
    }
    switch (m.type) {
      case 'ping':
        return c.send(m.id === undefined ? { v: SIGNALLING_VERSION, type: 'pong' } : { v: SIGNALLING_VERSION, type: 'pong', ref: m.id });
      case 'pong':
        return;
      case 'register':
        return this.#register(c, m);
      case 'claim-name':
      case 'resolve-name':
        return this.#name(c, m);
      default:
        if (RELAYED.has(m.type) && 'from' in m) this.#relay(c, m, text);
    }
  }

  /** The per-connection token bucket: false (the message is dropped) when `c` is over it. */
  #takeToken(c: Connection): boolean {
    const { stats, limits, log, events } = this.#d;
    if (c.bucket.take(performance.now())) {
      c.dropped = 0;
      return true;
    }
    stats.rateLimited++;
    c.dropped++;
    if (c.dropped === 1) {
      events({ type: 'rate-limited', service: 'rendezvous', source: c.source, what: 'requests' });
      c.error('rate-limited', 'too many messages: slow down', undefined);
    }
    if (c.dropped > limits.maxDropped) {
      stats.rateLimitDisconnects++;
      log.info({ remote: c.remote, peerId: c.peerId }, 'rendezvous: closing a connection over its rate limit');
      this.drop(c, RENDEZVOUS_CLOSE_CODES.rateLimited, 'rate limit');
    }
    return false;
  }

  /** Whether `m`'s signature verifies for the challenge `nonce` and the key's peer id. */
  static #signatureOk(m: RegisterMessage, nonce: string | undefined, peerId: string): boolean {
    if (nonce === undefined) return false;
    try {
      const key: KeyObject = createPublicKey({ key: { kty: 'OKP', crv: 'Ed25519', x: m.publicKey }, format: 'jwk' });
      return verify(null, registerSigningPayload(nonce, peerId), key, Buffer.from(m.signature, 'base64url'));
    } catch {
      return false; // a key OpenSSL refuses is as bad as a bad signature
    }
  }

  #register(c: Connection, m: RegisterMessage): void {
    const { stats, log, events, admission } = this.#d;
    if (c.peerId !== undefined) {
      stats.badMessages++;
      return c.error('bad-message', 'already registered', m.id);
    }
    const nonce = c.nonce;
    c.nonce = undefined; // single use: one attempt per challenge
    const peerId = peerIdFromPublicKey(Buffer.from(m.publicKey, 'base64url'));
    if (!Signalling.#signatureOk(m, nonce, peerId)) {
      stats.registrationsRefused++;
      log.debug({ remote: c.remote }, 'rendezvous: register refused');
      events({ type: 'auth-failure', service: 'rendezvous', reason: 'bad-integrity', source: c.source });
      c.error('unauthorized', 'the signature does not verify for this challenge and key', m.id);
      return this.drop(c, RENDEZVOUS_CLOSE_CODES.unauthorized, 'unauthorized');
    }
    if (!admission.keyOk(peerId)) {
      stats.admissionRefused++;
      log.info({ remote: c.remote, peerId }, 'rendezvous: a key not on the list tried to register');
      events({ type: 'auth-failure', service: 'rendezvous', reason: 'not-allowed', source: c.source, user: peerId });
      c.error('unauthorized', 'this rendezvous admits only the keys its operator listed', m.id);
      return this.drop(c, RENDEZVOUS_CLOSE_CODES.unauthorized, 'unauthorized');
    }
    clearTimeout(c.registerTimer);
    const previous = this.peers.get(peerId);
    if (previous !== undefined && previous !== c) {
      // Newest wins: the holder of the key reconnected (a new network, a restart) and the old
      // connection is most likely dead. Only the key's holder can do this.
      this.#replace(previous);
    }
    c.peerId = peerId;
    this.peers.set(peerId, c);
    this.names.touch(peerId, Date.now());
    stats.registrations++;
    log.debug({ peerId, remote: c.remote }, 'rendezvous peer registered');
    events({ type: 'peer-online', peer: peerId, source: c.source, anonymous: !admission.listed(peerId) });
    if (this.#cluster === undefined) c.send(this.#registered(peerId, m.id));
    else this.#cluster.register(c, peerId, this.#registered(peerId, m.id));
  }

  /** True (after answering `unauthorized`) when `c` has not registered yet. */
  #unregistered(c: Connection, ref: string | undefined): c is Connection & { peerId: undefined } {
    if (c.peerId !== undefined) return false;
    this.#d.stats.unauthorized++;
    c.error('unauthorized', 'register first', ref);
    return true;
  }

  #name(c: Connection, m: ClaimNameMessage | ResolveNameMessage): void {
    if (this.#unregistered(c, m.id)) return;
    const peerId = c.peerId!;
    if (this.#cluster !== undefined) return this.#cluster.name(c, peerId, m);
    let owner: string | undefined;
    if (m.type === 'claim-name') {
      const refused = this.names.claim(m.name, peerId, c.ip, Date.now());
      if (refused !== undefined) return this.#claimRefused(c, m, refused);
      owner = peerId;
    } else if ((owner = this.names.ownerOf(m.name, Date.now())) === undefined) {
      return c.error('unknown-name', `nobody claimed the name ${m.name}`, m.id);
    }
    const online = this.peers.get(owner)?.ws.readyState === 1;
    c.send({ v: SIGNALLING_VERSION, type: 'name', ...(m.id === undefined ? {} : { ref: m.id }), name: m.name, peerId: owner, online });
  }

  #claimRefused(c: Connection, m: ClaimNameMessage, refused: ClaimRefusal): void {
    const { stats, log, events } = this.#d;
    stats.nameClaimsRefused++;
    log.debug({ peerId: c.peerId, remote: c.remote, cause: refused }, 'rendezvous: name claim refused');
    if (refused === 'per-source') events({ type: 'rate-limited', service: 'rendezvous', source: c.source, what: 'registrations' });
    else events({ type: 'refused', service: 'rendezvous', cause: CLAIM_CAUSE[refused], source: c.source, user: c.peerId!, pool: 'names' });
    c.error('name-taken', `the name ${m.name} ${CLAIM_REFUSED[refused]}`, m.id);
  }

  #registered(peerId: string, ref: string | undefined): SignallingMessage {
    const iceServers: SignallingIceServer[] = [];
    let ttl: number | undefined;
    const t = this.#d.turn;
    if (t !== undefined) {
      if (t.stunUrls.length > 0) iceServers.push({ urls: [...t.stunUrls] });
      // The anonymous tier: relay only, toward what this peer's sessions signal (see RelayTiers).
      const cred = anonymousRelayCredentials(this.#turnSecret ?? t.secret, peerId, t.ttl, Date.now());
      iceServers.push({ urls: [...t.turnUrls], username: cred.username, credential: cred.password });
      ttl = t.ttl;
    }
    iceServers.push(...this.#d.iceServers);
    return {
      v: SIGNALLING_VERSION,
      type: 'registered',
      ...(ref === undefined ? {} : { ref }),
      peerId,
      ...(iceServers.length > 0 ? { iceServers } : {}),
      ...(ttl === undefined ? {} : { ttl }),
    };
  }

  #relay(c: Connection, m: SignallingMessage & { from: string; to: string }, text: string): void {
    const { stats, limits } = this.#d;
    if (this.#unregistered(c, m.id)) return;
    if (m.from !== c.peerId) {
      stats.unauthorized++;
      return c.error('unauthorized', '`from` is not the peer id this connection registered', m.id);
    }
    const target = this.peers.get(m.to);
    if (target === undefined && this.#cluster !== undefined) {
      // Not here: on another node, or on none (answered `peer-offline` as locally).
      return this.#cluster.forward(c, m.to, m.id, text, () => this.#relayed(c, m));
    }
    if (target === undefined || target.ws.readyState !== target.ws.OPEN) {
      // Nothing is remembered about peers that left, so an unknown and an offline peer look the
      // same: both are answered `peer-offline`.
      stats.peerOffline++;
      return c.error('peer-offline', 'the peer is not connected', m.id);
    }
    if (target.ws.bufferedAmount > limits.maxBufferedBytes) {
      stats.rateLimited++;
      return c.error('rate-limited', 'the peer is not reading its messages', m.id);
    }
    // The text passed the strict schema, so it is forwarded exactly as received.
    target.ws.send(text);
    this.#relayed(c, m);
  }

  /** `m` from `c` went on its way: counted, and its candidates recorded in the relay scope. */
  #relayed(c: Connection, m: SignallingMessage & { from: string; to: string }): void {
    const { stats, scope, events } = this.#d;
    stats.relayed++;
    if (m.type === 'offer') events({ type: 'session-brokered', from: m.from, to: m.to });
    if (scope !== undefined) recordSignalledCandidates(scope, m, c.ip, Date.now());
  }
}
