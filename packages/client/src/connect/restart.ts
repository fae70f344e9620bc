/**
 * What an ICE restart (RFC 8445 section 9) of an {@link IceConnection} needs besides the agent:
 * noticing that the host's addresses changed (a new Wi-Fi, a DHCP renewal, a moved laptop), so
 * that the connection gathers new candidates and restarts its checks on the same session
 * instead of letting its path die.
 *
 * Signalling: a restart is a description (`answer`: ufrag, pwd, candidates) with a new ufrag
 * within the session, from either side; the peer restarts its own agent too and answers with its
 * own new description, then both trickle and end their candidates as at the start.
 */

import { randomBytes } from 'node:crypto';
import { MAX_CANDIDATES_PER_DESCRIPTION, type TransportAddress, formatCandidate } from '@nat/protocol';
import type { IceAgent } from '../ice/agent.js';
import type { BaseId } from '../ice/types.js';
import type { OutgoingRelayedMessage } from '../rendezvous/options.js';

export { renewRelay } from './restart-relay.js';

/** Options of {@link watchHostAddresses}. */
export interface HostWatchOptions {
  /** The host's usable addresses now (node:os interfaces). */
  readonly current: () => readonly string[];
  /** Called when the addresses differ from those of the last call (or of the start), and have been stable for one interval. */
  readonly onChange: () => void;
  /** How often the addresses are read, ms. Default 500. */
  readonly intervalMs?: number;
}

const sameSet = (a: readonly string[], b: readonly string[]): boolean => a.length === b.length && a.every((x) => b.includes(x));

/**
 * Polls the host's addresses (node has no event for this) and calls `onChange` once they differ
 * from those it last acted on (at first, those at the start) and were the same at two reads in a
 * row (an address removed and a new one added a moment later is one change, not two); never
 * while no address is left. An address that cannot be bound does not call it again and again:
 * the comparison is with what the host had, not with what the connection bound. Returns a stop
 * function. The timer does not keep the process alive.
 */
export function watchHostAddresses(options: HostWatchOptions): () => void {
  let acted = options.current();
  let last = acted;
  const timer = setInterval(() => {
    const now = options.current();
    const stable = sameSet(now, last);
    last = now;
    if (!stable || now.length === 0 || sameSet(now, acted)) return;
    acted = now;
    options.onChange();
  }, options.intervalMs ?? 500);
  timer.unref();
  return () => clearInterval(timer);
}

/** A host socket of the connection, as a restart sees it. */
export interface RestartHost {
  readonly base: string;
  readonly address: TransportAddress;
  readonly socket: { close(): unknown };
}

/** What an {@link IceRestart} needs of its connection (connection.ts hands these over). */
export interface RestartContext {
  readonly agent: IceAgent;
  readonly peerId: string;
  readonly sessionId: string;
  closed(): boolean;
  /** The host's addresses to gather on now; undefined when the caller fixed them. */
  addresses(): readonly string[] | undefined;
  /** The host sockets now (bases `host:IP`). */
  hosts(): RestartHost[];
  /** Binds and registers a host socket on `ip`. */
  bind(ip: string): Promise<unknown>;
  /** Forgets a socket about to close (the selected pair on it is no route any more). */
  forget(base: string): void;
  /** Tells the path listeners that a restart starts (a peer link moves its streams off closing sockets). */
  announce(): void;
  /** Switches to a fresh signalling connection when the options say how. */
  renewSignalling(): Promise<void>;
  /** Adds a host candidate of `host` with this local preference. */
  addHost(host: RestartHost, localPreference: number): void;
  /** Gathers and trickles the server-reflexive candidates of every host socket. */
  gatherReflexive(): Promise<void>;
  /** When the TURN allocation in use is gone, allocates anew and trickles the new relayed candidates (restart-relay.ts). */
  renewRelay(): Promise<void>;
  /** Whether the signalling connection closed (the rendezvous server restarted or went away). */
  signallingLost(): boolean;
  /** Whether a local candidate's base still has its socket (or allocation). */
  usable(base: BaseId): boolean;
  /** Adds a signalled remote candidate line. */
  addRemote(line: string): void;
  send(message: OutgoingRelayedMessage): void;
  flush(): void;
}

const iceChars = (bytes: number): string => randomBytes(bytes).toString('base64');
/** How long a restart waits for a new selected pair before it starts over, ms. */
const RETRY_MS = 3000;
/** How long after a restart a disconnected path starts no other, ms (above the agent's 8 s disconnected timeout). */
const QUIET_MS = 10_000;
/** Restarts in a row without a new pair before giving up (consent then ends the path). */
const MAX_TRIES = 4;

/**
 * ICE restart on one session (RFC 8445 section 9) for an {@link IceConnection}: a description
 * (`answer`) with a new ufrag, from either side, restarts both agents; the side that did not
 * start answers with its own. The selected pair carries data until a new one is selected.
 */
export class IceRestart {
  /** The peer's current ufrag: a description with another one is a restart. */
  remoteUfrag: string | undefined;
  /** Our restart awaits the peer's description. */
  #waiting = false;
  /** Our last restart signalled its description, and its end-of-candidates. */
  #described = true;
  #gathered = true;
  /** Tries again when no new pair was selected in time (a description lost while both sides renewed their signalling). */
  #retry: NodeJS.Timeout | undefined;
  #tries = 0;
  /** When this side last restarted or answered a restart (performance.now()). */
  #lastAt = -Infinity;
  readonly #c: RestartContext;

  constructor(context: RestartContext, remoteUfrag: string | undefined) {
    this.#c = context;
    this.remoteUfrag = remoteUfrag;
  }

  /**
   * Restarts: new credentials; host sockets for the host's addresses now (those on vanished
   * addresses close, after the path listeners were told); host and server-reflexive candidates
   * signalled to the peer, then end-of-candidates.
   */
  async run(): Promise<void> {
    const c = this.#c;
    this.#waiting = true;
    this.#described = false;
    this.#gathered = false;
    this.#lastAt = performance.now();
    this.#expectPath();
    c.agent.restart(iceChars(6), iceChars(18));
    // the agent forgot the peer's credentials: whatever description comes next is the answer,
    // even one with the ufrag we had (the peer's restart that crossed ours)
    this.remoteUfrag = undefined;
    const now = c.addresses();
    const old = c.hosts();
    const gone = now === undefined ? [] : old.filter((h) => !now.includes(h.address.address));
    const added = (now ?? []).filter((ip) => !old.some((h) => h.address.address === ip));
    for (const ip of added) await c.bind(ip).catch(() => undefined);
    if (c.closed()) return;
    for (const h of gone) c.forget(h.base);
    c.announce();
    for (const h of gone) h.socket.close();
    // a new address: the signalling connection may have died with the old one; or it closed (the
    // server restarted). Not otherwise: renewing it needlessly can lose the peer's description
    // while neither side is registered
    if (gone.length > 0 || added.length > 0 || c.signallingLost()) await c.renewSignalling();
    if (c.closed()) return;
    const hosts = c.hosts();
    for (const [i, h] of hosts.entries()) c.addHost(h, 65535 - i);
    this.#describe();
    this.#described = true;
    c.flush();
    await Promise.all([c.gatherReflexive(), c.renewRelay()]);
    if (c.closed()) return;
    c.send({ type: 'end-of-candidates', to: c.peerId, sessionId: c.sessionId });
    this.#gathered = true;
    c.flush();
  }

  /** A description within the session: handled (true) when its ufrag is new, i.e. a restart's. */
  onDescription(m: { readonly ufrag: string; readonly pwd: string; readonly candidates: readonly string[] }): boolean {
    if (m.ufrag === this.remoteUfrag) return false;
    const c = this.#c;
    const ours = this.#waiting;
    this.#waiting = false;
    if (!ours) {
      this.#lastAt = performance.now();
      c.agent.restart(iceChars(6), iceChars(18));
      this.#expectPath();
    }
    c.agent.setRemoteCredentials(m.ufrag, m.pwd);
    this.remoteUfrag = m.ufrag;
    for (const line of m.candidates) c.addRemote(line);
    // Answered, or (ours, once our restart has described itself) said again: when both sides
    // restarted at once, each may take the other's description as the answer to its own while
    // ours was lost (sent while the peer renewed its signalling connection) or one side restarts
    // again (a retry); a peer that has our ufrag already ignores it, one that lacks it takes it
    // as its answer.
    if (!ours || this.#described) this.#describe();
    if (!ours || this.#gathered) c.send({ type: 'end-of-candidates', to: c.peerId, sessionId: c.sessionId });
    return true;
  }

  /**
   * Whether no restart ran for a while: a path that went quiet during one (consent unanswered
   * while the peer moves) is no reason for another, which would throw away the credentials the
   * first has just exchanged.
   */
  quiet(): boolean {
    return performance.now() - this.#lastAt > QUIET_MS;
  }

  /** A new pair was selected: the restart is over. */
  onSelected(): void {
    clearTimeout(this.#retry);
    this.#retry = undefined;
    this.#tries = 0;
  }

  /** Stops retrying (the connection closed). */
  close(): void {
    clearTimeout(this.#retry);
  }

  /**
   * Restarts again when no new pair is selected within {@link RETRY_MS}, up to {@link MAX_TRIES}
   * times in a row; only the controlling side does, so that the two sides' retries never meet
   * (each would clear the credentials the other's had just brought).
   */
  #expectPath(): void {
    clearTimeout(this.#retry);
    if (this.#c.agent.role !== 'controlling' || this.#tries++ >= MAX_TRIES) return;
    this.#retry = setTimeout(() => {
      if (!this.#c.closed()) void this.run();
    }, RETRY_MS);
    this.#retry.unref();
  }

  /** Our credentials and every local candidate still on a socket, as an `answer` within the session. */
  #describe(): void {
    const c = this.#c;
    const { ufrag, pwd } = c.agent.localCredentials;
    const candidates = c.agent
      .localCandidates()
      .filter((l) => l.candidate.type !== 'prflx' && c.usable(l.base))
      .map((l) => formatCandidate(l.candidate))
      .slice(0, MAX_CANDIDATES_PER_DESCRIPTION);
    c.send({ type: 'answer', to: c.peerId, sessionId: c.sessionId, ufrag, pwd, candidates });
  }
}
