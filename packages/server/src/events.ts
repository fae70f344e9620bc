/**
 * The server's typed event sink: everything an operator can observe, emitted by the protocol
 * cores (STUN responder, TURN core, rendezvous, expose) and the connection-governance layer.
 * Metrics, the status view and logs attach here; nothing in the cores knows who listens.
 *
 * Events carry no secrets: a user is the TURN/expose user name (never a password or key), a
 * source is {@link sourceKey}'s text (an IPv4 address or an IPv6 /64).
 *
 * Hot paths do not emit per packet: relayed traffic is summed per allocation and emitted as a
 * `relayed` event at most once a second (and when the allocation ends).
 *
 * @example
 * ```ts
 * const hub = new ServerEventHub();
 * hub.subscribe((e) => { if (e.type === 'auth-failure') console.log(e.service, e.reason); });
 * await startStunServer({ listen: ['127.0.0.1'], events: hub.sink, turn: { ... } });
 * ```
 */
import type { OutboundRefusal, TransportAddress } from '@nat/protocol';

/** Which service an event is about. */
export type ServiceName = 'stun' | 'turn' | 'rendezvous' | 'expose' | 'admin';

/** How a connection or listener reached the server. */
export type EventTransport = 'udp' | 'tcp' | 'tls' | 'websocket' | 'yamux';

/** Why authentication failed. */
export type AuthFailureReason =
  /** No credentials in the request (a challenge was sent). */
  | 'missing'
  /** The user is not known (or its REST credential expired). */
  | 'unknown-user'
  /** MESSAGE-INTEGRITY (or the expose key/signature) did not verify. */
  | 'bad-integrity'
  /** The nonce was stale or forged (438). */
  | 'stale-nonce'
  /** The credential is of a tier this service does not take (an anonymous one for exposure). */
  | 'wrong-tier'
  /** The peer key or token is not on the operator's list. */
  | 'not-allowed';

/** Why a request or connection was refused by a limit. */
export type RefusalCause =
  /** The service-wide cap of the pool (connections, allocations, sessions, ports, names). */
  | 'global-cap'
  /** The per-source-address share of the pool. */
  | 'source-share'
  /** The per-user share or quota. */
  | 'user-quota'
  /** The anonymous tier's own limits (per peer, all anonymous peers together). */
  | 'anonymous-tier'
  /** Bandwidth cap exceeded (packets dropped). */
  | 'bandwidth'
  /** Relay port range exhausted (508). */
  | 'no-ports'
  /** The peer address is denied by policy (403). */
  | 'peer-denied'
  /** An anonymous peer's relay toward an address outside its sessions' scope. */
  | 'out-of-scope'
  /** A name is taken, or the per-key/per-address name budget is used up. */
  | 'name';

/** Why a connection ended. */
export type CloseCause =
  /** The client closed it (end or reset). */
  | 'client'
  /** Silent for longer than the idle timeout. */
  | 'idle'
  /** The TLS (or protocol) handshake did not finish in time. */
  | 'handshake-timeout'
  /** Its unsent output passed the bound: the client does not read. */
  | 'backpressure'
  /** Refused at accept by a cap or share (see the matching `refused` event). */
  | 'refused'
  /** Protocol error or too many error answers. */
  | 'protocol-error'
  /** A socket error. */
  | 'error'
  /** The server is closing. */
  | 'server-close'
  /** The service closed it (replaced registration, expired allocation, session ended). */
  | 'service';

/** Why an allocation ended. */
export type AllocationEndCause = 'expired' | 'deleted' | 'connection-closed' | 'relay-failed' | 'server-close';

/** Every event of {@link ServerEventSink}, discriminated by `type`. */
export type ServerEvent =
  | {
      readonly type: 'allocation-created';
      readonly allocation: number;
      readonly user: string;
      readonly source: string;
      /** Client transport to the server. */
      readonly transport: 'udp' | 'tcp' | 'tls';
      /** REQUESTED-TRANSPORT: UDP relaying or RFC 6062 TCP. */
      readonly relay: 'udp' | 'tcp';
      readonly lifetimeS: number;
      readonly anonymous: boolean;
    }
  | { readonly type: 'allocation-refreshed'; readonly allocation: number; readonly user: string; readonly lifetimeS: number }
  | {
      readonly type: 'allocation-ended';
      readonly allocation: number;
      readonly user: string;
      readonly relay: 'udp' | 'tcp';
      readonly cause: AllocationEndCause;
    }
  | {
      /** Traffic relayed by one allocation since its last `relayed` event. */
      readonly type: 'relayed';
      readonly allocation: number;
      readonly user: string;
      readonly packetsToPeer: number;
      readonly bytesToPeer: number;
      readonly packetsToClient: number;
      readonly bytesToClient: number;
    }
  | {
      readonly type: 'auth-failure';
      readonly service: ServiceName;
      readonly reason: AuthFailureReason;
      readonly source: string;
      /** The user name presented, when there was one. */
      readonly user?: string;
    }
  | {
      readonly type: 'refused';
      readonly service: ServiceName;
      readonly cause: RefusalCause;
      readonly source: string;
      readonly user?: string;
      /** Which pool: 'connections', 'allocations', 'permissions', 'tcp-connections', 'sessions', 'ports', 'names', ... */
      readonly pool: string;
    }
  | { readonly type: 'rate-limited'; readonly service: ServiceName; readonly source: string; readonly what: 'requests' | 'error-answers' | 'registrations' }
  | {
      readonly type: 'connection-opened';
      readonly service: ServiceName;
      readonly transport: EventTransport;
      readonly source: string;
    }
  | {
      readonly type: 'connection-closed';
      readonly service: ServiceName;
      readonly transport: EventTransport;
      readonly source: string;
      readonly cause: CloseCause;
      readonly durationMs: number;
    }
  | { readonly type: 'peer-online'; readonly peer: string; readonly source: string; readonly anonymous: boolean }
  | { readonly type: 'peer-offline'; readonly peer: string; readonly cause: 'closed' | 'replaced' | 'timeout' | 'server-close' }
  | { readonly type: 'session-brokered'; readonly from: string; readonly to: string }
  | { readonly type: 'expose-port-opened'; readonly user: string; readonly name: string; readonly address: TransportAddress; readonly protocol: 'tcp' | 'udp' }
  | { readonly type: 'expose-port-closed'; readonly user: string; readonly name: string; readonly address: TransportAddress; readonly protocol: 'tcp' | 'udp' }
  | { readonly type: 'expose-connection'; readonly user: string; readonly name: string; readonly source: string; readonly state: 'opened' | 'closed' }
  | {
      /**
       * An outbound connection the expose service opened for a user (nat-server --expose-outbound):
       * `target` as asked (host:port), `address` the peer it reached; `reason` when refused;
       * bytes both ways when closed.
       */
      readonly type: 'expose-outbound';
      readonly user: string;
      readonly state: 'opened' | 'refused' | 'closed';
      readonly target: string;
      readonly address?: TransportAddress;
      readonly reason?: OutboundRefusal;
      readonly bytesToPeer?: number;
      readonly bytesToClient?: number;
    };

/** The kinds of {@link ServerEvent}. */
export type ServerEventType = ServerEvent['type'];

/** The event of one kind. */
export type ServerEventOf<T extends ServerEventType> = Extract<ServerEvent, { type: T }>;

/** Receives events. Must not throw and must return quickly (it runs on the server's event loop). */
export type ServerEventSink = (event: ServerEvent) => void;

/** A sink that drops everything: the default of every `events` option. */
export const noEvents: ServerEventSink = () => undefined;

/**
 * Fans events out to any number of subscribers. A subscriber that throws is removed (and the
 * error reported through `onError`) so that it never disturbs the service that emitted.
 */
export class ServerEventHub {
  readonly #subscribers = new Set<ServerEventSink>();
  readonly #onError: (error: unknown) => void;

  constructor(init: { onError?: (error: unknown) => void } = {}) {
    this.#onError = init.onError ?? (() => undefined);
  }

  /** Pass this to the services' `events` option. */
  readonly sink: ServerEventSink = (event) => {
    for (const s of this.#subscribers) {
      try {
        s(event);
      } catch (e) {
        this.#subscribers.delete(s);
        this.#onError(e);
      }
    }
  };

  /** Adds a subscriber; returns the function that removes it. */
  subscribe(listener: ServerEventSink): () => void {
    this.#subscribers.add(listener);
    return () => this.#subscribers.delete(listener);
  }

  /** Adds a subscriber for one kind of event. */
  on<T extends ServerEventType>(type: T, listener: (event: ServerEventOf<T>) => void): () => void {
    return this.subscribe((e) => {
      if (e.type === type) listener(e as ServerEventOf<T>);
    });
  }

  /** How many subscribers are attached. */
  get size(): number {
    return this.#subscribers.size;
  }
}
