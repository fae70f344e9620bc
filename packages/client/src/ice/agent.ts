/**
 * A sans-I/O ICE agent: RFC 8445 (full agent, one component, UDP), RFC 8838 trickle ICE and
 * RFC 7675 consent freshness, as a plain state machine in the manner of str0m and quinn-proto.
 * The driver feeds it candidates, credentials, packets and the time; it asks the agent what to
 * send (`pollTransmit`), when to wake it (`pollTimeout`) and what happened (`pollEvent`).
 * Nothing here opens a socket, reads a clock or starts a timer.
 */
import {
  type IceCandidate,
  type StunMessage,
  StunClass,
  StunMethod,
  candidateTransportAddress,
  decodeStunMessage,
  looksLikeStun,
  shortTermKey,
  verifyFingerprint,
} from '@nat/protocol';
import { COMPONENT, type LocalCandidate, type RemoteCandidate, canonicalAddress, keyOf, pairInfo } from './pair.js';
import { IceSelection } from './selection.js';
import type { BaseId, CandidatePairInfo, IcePacketSource, IceRole, IceAgentState, IceTransmit, IceAgentEvent } from './types.js';

export type { IceAgentInit } from './checklist.js';

/**
 * The ICE agent. One data stream with one component over UDP; candidates are gathered by the
 * driver and handed in with the base (socket or TURN allocation) they belong to.
 *
 * Relay first, then upgrade: the controlling agent nominates a relayed pair as soon as it works
 * when nothing is selected yet, keeps checking, and nominates a direct pair when one succeeds.
 * RFC 8445 ends checks at the first nomination; this agent lets the controlling side nominate
 * again (as renomination does), and the controlled side always uses the highest-priority
 * nominated pair. Both emit `selected-pair` when it changes.
 *
 * Candidates pair by base: a server-reflexive candidate is replaced by its base (RFC 8445
 * section 6.1.2.4), so add a base's host candidate before its srflx candidate; a srflx candidate
 * is still used to recognise the address the peer sees.
 *
 * Its parts, each a module: `checklist.ts` (state, pairing, check transactions), `checks.ts`
 * (answering checks, reading responses), `selection.ts` (nomination, consent, failure).
 */
export class IceAgent extends IceSelection {
  /** The current role. */
  get role(): IceRole {
    return this.roleValue;
  }

  /** The current state. */
  get state(): IceAgentState {
    return this.stateValue;
  }

  /** The local username fragment and password, to signal to the peer. */
  get localCredentials(): { readonly ufrag: string; readonly pwd: string } {
    return { ufrag: this.localUfrag, pwd: this.localPwd };
  }

  // -------------------------------------------------------------------------------------------
  // Inputs

  /**
   * A candidate the driver gathered on `base`: host (the socket's address), srflx (learned from a
   * STUN server through that socket) or relay (a TURN allocation, with its own base id).
   * @throws RangeError when the candidate's address is a host name, or it is not a UDP component 1 candidate
   */
  addLocalCandidate(candidate: IceCandidate, base: BaseId): void {
    const address = candidateTransportAddress(candidate);
    if (address === undefined) throw new RangeError(`local candidate address ${candidate.address} is not an IP address`);
    if (candidate.transport !== 'udp' || candidate.component !== COMPONENT) {
      throw new RangeError('only UDP candidates of component 1 are supported');
    }
    const key = keyOf(address);
    if (this.locals.some((l) => l.key === key && l.base === base)) return;
    const local: LocalCandidate = { candidate, base, address, key };
    this.locals.push(local);
    if ((candidate.type === 'host' || candidate.type === 'relay') && !this.baseCandidates.has(base)) {
      this.baseCandidates.set(base, local);
      for (const remote of this.remotes.values()) this.addPair(local, remote);
    }
  }

  /** The driver has gathered every local candidate (RFC 8838 section 8.2). */
  endOfLocalCandidates(): void {
    this.localEnded = true;
  }

  /**
   * The peer's ufrag and password. A new ufrag after one was set is an ICE restart by the peer
   * (RFC 8445 section 9): the checklist starts over; call {@link restart} too so both sides change.
   */
  setRemoteCredentials(ufrag: string, pwd: string): void {
    if (this.remoteUfrag !== undefined && this.remoteUfrag !== ufrag) this.resetChecklist();
    this.remoteUfrag = ufrag;
    this.remotePwd = pwd;
    this.remoteKey = shortTermKey(pwd);
    if (this.selected !== undefined) this.selected.consentAt = Math.max(this.selected.consentAt, this.now);
  }

  /**
   * A remote candidate, signalled or trickled (RFC 8838). TCP, mDNS-named and other-component
   * candidates are ignored. A candidate that was known as peer-reflexive takes its signalled form.
   */
  addRemoteCandidate(candidate: IceCandidate): void {
    if (candidate.transport !== 'udp' || candidate.component !== COMPONENT) return;
    const address = candidateTransportAddress(candidate);
    if (address === undefined) return;
    const key = keyOf(address);
    const known = this.remotes.get(key);
    if (known !== undefined) {
      if (known.candidate.type === 'prflx') {
        known.candidate = candidate;
        this.recomputePriorities();
      }
      return;
    }
    const remote: RemoteCandidate = { candidate, address, key };
    this.remotes.set(key, remote);
    for (const local of this.baseCandidates.values()) this.addPair(local, remote);
  }

  /** The peer signalled end-of-candidates (RFC 8838 section 8.2). */
  endOfRemoteCandidates(): void {
    this.remoteEnded = true;
  }

  /**
   * ICE restart (RFC 8445 section 9): new local credentials, and a new checklist once the peer's
   * new credentials and candidates arrive. The selected pair, if any, stays usable for data until
   * a new one is selected. Local host, srflx and relay candidates are kept.
   */
  restart(ufrag: string, pwd: string): void {
    this.localUfrag = ufrag;
    this.localPwd = pwd;
    this.localKey = shortTermKey(pwd);
    this.remoteUfrag = undefined;
    this.remotePwd = undefined;
    this.remoteKey = undefined;
    this.resetChecklist();
    if (this.stateValue === 'failed') this.setState(this.selected === undefined ? 'new' : 'connected');
  }

  /** Stops everything: no more transmits or timeouts. */
  close(): void {
    this.transactions.clear();
    this.triggered = [];
    this.setState('closed');
  }

  /**
   * A datagram received on `source.base`. Returns false when it is not a STUN Binding message,
   * so the driver hands it to the application (RFC 7983 demultiplexing); true when the agent
   * consumed it (answered, matched to a check, or dropped as invalid).
   */
  handlePacket(bytes: Uint8Array, source: IcePacketSource, now: number): boolean {
    if (!looksLikeStun(bytes)) return false;
    let message: StunMessage;
    try {
      message = decodeStunMessage(bytes);
    } catch {
      return true;
    }
    if (message.method !== StunMethod.Binding) return false;
    this.advance(now);
    if (this.stateValue === 'closed') return true;
    if (message.fingerprintOffset >= 0 && !verifyFingerprint(message)) return true;
    const from = canonicalAddress(source.from);
    try {
      if (message.class === StunClass.Request) this.handleRequest(message, source.base, from);
      else if (message.class === StunClass.SuccessResponse || message.class === StunClass.ErrorResponse) {
        this.handleResponse(message, source.base, from);
      }
    } catch {
      // an attribute that does not decode: the message is dropped
    }
    this.run();
    return true;
  }

  /** The time has come (or passed) that {@link pollTimeout} named; any time may be passed. */
  handleTimeout(now: number): void {
    this.advance(now);
    this.run();
  }

  // -------------------------------------------------------------------------------------------
  // Outputs

  /** The next datagram to send, if any. */
  pollTransmit(): IceTransmit | undefined {
    return this.transmits.shift();
  }

  /** The next event, if any. */
  pollEvent(): IceAgentEvent | undefined {
    return this.events.shift();
  }

  /**
   * When to call {@link handleTimeout} next (in the driver's clock), or undefined when nothing is
   * scheduled. A time at or before the last `now` means "at once".
   */
  pollTimeout(): number | undefined {
    if (this.stateValue === 'closed' || (this.stateValue === 'failed' && this.selected === undefined)) return undefined;
    if (this.startedAt === undefined) return this.now;
    let t = Number.POSITIVE_INFINITY;
    if (this.canCheck() && (this.triggered.length > 0 || this.nextOrdinaryPair() !== undefined)) {
      t = Math.min(t, this.nextCheckAt);
    }
    for (const tx of this.transactions.values()) t = Math.min(t, tx.nextAt);
    if (this.selected === undefined) t = Math.min(t, this.startedAt + this.opts.failureTimeout);
    const nomination = this.nominationDue();
    if (nomination !== undefined) t = Math.min(t, nomination.at);
    const s = this.selected;
    if (s !== undefined && this.remoteKey !== undefined) {
      t = Math.min(t, this.nextConsentAt, s.consentAt + this.opts.consentTimeout, s.lastSentAt + this.opts.keepaliveInterval);
      if (this.stateValue !== 'disconnected') t = Math.min(t, s.consentAt + this.opts.disconnectedTimeout);
    }
    return t === Number.POSITIVE_INFINITY ? undefined : t;
  }

  /** The selected pair, if any: where the driver sends application data. */
  selectedPair(): CandidatePairInfo | undefined {
    return this.selected === undefined ? undefined : pairInfo(this.selected);
  }

  /** Every pair of the checklist, highest priority first. */
  pairs(): CandidatePairInfo[] {
    return this.pairList.map((p) => pairInfo(p));
  }

  /** The local candidates, including peer-reflexive ones learned from checks. */
  localCandidates(): { candidate: IceCandidate; base: BaseId }[] {
    return this.locals.map((l) => ({ candidate: l.candidate, base: l.base }));
  }

  /** The remote candidates, including peer-reflexive ones learned from checks. */
  remoteCandidates(): IceCandidate[] {
    return [...this.remotes.values()].map((r) => r.candidate);
  }
}
