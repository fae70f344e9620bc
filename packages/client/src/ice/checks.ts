/**
 * The ICE agent's second part: connectivity checks as the other side sees them. Answering the
 * peer's checks (RFC 8445 section 7.3: authentication, role conflicts, peer-reflexive remote
 * candidates, triggered checks) and reading the responses to ours (section 7.2.5: the pair
 * succeeds or fails, peer-reflexive local candidates, role switches on 487).
 */
import { Attr, type IceCandidate, type StunMessage, StunClass, type TransportAddress, candidateFoundation, verifyMessageIntegrity } from '@nat/protocol';
import { IceChecklist } from './checklist.js';
import { encodeCheckError, encodeCheckSuccess } from './messages.js';
import { COMPONENT, type LocalCandidate, type Pair, canonicalAddress, keyOf } from './pair.js';
import type { BaseId, IceRole } from './types.js';

/** Checks answered and responses read; nomination is the next part's (`selection.ts`). */
export abstract class IceConnectivityChecks extends IceChecklist {
  /** The pair was nominated (a USE-CANDIDATE check succeeded, or the peer's arrived). */
  protected abstract markNominated(pair: Pair): void;
  /** The selected pair's checks changed: connected or completed. */
  protected abstract updateConnectedState(): void;

  // -------------------------------------------------------------------------------------------
  // Requests (RFC 8445 section 7.3)

  protected handleRequest(message: StunMessage, base: BaseId, from: TransportAddress): void {
    const local = this.baseCandidates.get(base);
    if (local === undefined) return;
    const reply = (bytes: Uint8Array): void => {
      this.transmits.push({ base, to: from, bytes });
    };
    const id = message.transactionId;
    const username = message.get(Attr.Username);
    const priority = message.get(Attr.Priority);
    if (username === undefined || message.integrityOffset < 0) {
      reply(encodeCheckError(id, 400, undefined));
      return;
    }
    const colon = username.indexOf(':');
    if (colon < 0 || username.slice(0, colon) !== this.localUfrag || !verifyMessageIntegrity(message, this.localKey)) {
      reply(encodeCheckError(id, 401, undefined));
      return;
    }
    if (priority === undefined) {
      reply(encodeCheckError(id, 400, this.localPwd));
      return;
    }
    // RFC 8445 section 7.3.1.1: the agent with the larger tie-breaker keeps (or takes) the
    // controlling role; the other either answers 487 or switches.
    const theirControlling = message.get(Attr.IceControlling);
    const theirControlled = message.get(Attr.IceControlled);
    if (this.roleValue === 'controlling' && theirControlling !== undefined) {
      if (this.tieBreaker >= theirControlling) {
        reply(encodeCheckError(id, 487, this.localPwd));
        return;
      }
      this.switchRole('controlled');
    } else if (this.roleValue === 'controlled' && theirControlled !== undefined) {
      if (this.tieBreaker >= theirControlled) this.switchRole('controlling');
      else {
        reply(encodeCheckError(id, 487, this.localPwd));
        return;
      }
    }
    reply(encodeCheckSuccess(id, from, this.localPwd));
    if (this.stateValue === 'new') this.setState('checking');

    // RFC 8445 section 7.3.1.3: a source address that is no known remote candidate is a
    // peer-reflexive candidate, with the priority the request carried.
    const key = keyOf(from);
    let remote = this.remotes.get(key);
    if (remote === undefined) {
      const candidate: IceCandidate = {
        foundation: `prflx${++this.prflxCount}`,
        component: COMPONENT,
        transport: 'udp',
        priority,
        address: from.address,
        port: from.port,
        type: 'prflx',
        extensions: [],
      };
      remote = { candidate, address: from, key };
      this.remotes.set(key, remote);
      this.events.push({ type: 'remote-candidate', candidate });
    }
    const pair = this.findPair(base, key) ?? this.addPair(local, remote);
    if (pair === undefined) return;
    // RFC 8445 section 7.3.1.5: USE-CANDIDATE counts only when we are controlled.
    const useCandidate = message.has(Attr.UseCandidate) && this.roleValue === 'controlled';
    // RFC 8445 section 7.3.1.4: triggered checks.
    switch (pair.state) {
      case 'succeeded':
        if (useCandidate) this.markNominated(pair);
        return;
      case 'in-progress':
        this.cancelChecks(pair);
        break;
      default:
        break;
    }
    if (useCandidate) pair.nominateOnSuccess = true;
    this.setPairState(pair, 'waiting');
    this.enqueueTriggered(pair, false);
  }

  protected switchRole(role: IceRole): void {
    if (this.roleValue === role) return;
    this.roleValue = role;
    this.nominating = undefined;
    this.recomputePriorities();
    this.events.push({ type: 'role', role });
  }

  // -------------------------------------------------------------------------------------------
  // Responses (RFC 8445 section 7.2.5)

  protected handleResponse(message: StunMessage, base: BaseId, from: TransportAddress): void {
    const tx = this.transactions.get(message.transactionKey);
    if (tx === undefined) return;
    if (!verifyMessageIntegrity(message, tx.remoteKey)) return;
    this.transactions.delete(tx.key);
    const pair = tx.pair;
    if (!this.pairList.includes(pair) && pair !== this.selected) return;
    if (tx.useCandidate && this.nominating === pair) this.nominating = undefined;
    // RFC 8445 section 7.2.5.2.1: the response must come from where the request went, to where
    // it came from; otherwise the pair fails.
    if (base !== pair.local.base || keyOf(from) !== pair.remote.key) {
      if (tx.kind === 'check' && !tx.cancelled) this.failPair(pair);
      return;
    }
    if (message.class === StunClass.ErrorResponse) {
      const code = message.get(Attr.ErrorCode)?.code;
      if (code === 487 && tx.kind === 'check') {
        // RFC 8445 section 7.2.5.1: switch to the role opposite the one the request claimed,
        // and check the pair again.
        this.switchRole(tx.role === 'controlling' ? 'controlled' : 'controlling');
        if (pair.state !== 'succeeded') this.setPairState(pair, 'waiting');
        this.enqueueTriggered(pair, false);
      } else if (tx.kind === 'check' && !tx.cancelled) {
        this.failPair(pair);
      }
      return;
    }
    const rtt = this.now - tx.firstSentAt;
    pair.consentAt = this.now;
    pair.rttMs = rtt;
    if (tx.kind === 'consent') {
      if (pair === this.selected && this.stateValue === 'disconnected') this.updateConnectedState();
      return;
    }
    const mapped = message.get(Attr.XorMappedAddress);
    if (mapped !== undefined) pair.mappedLocal = this.mappedLocalCandidate(canonicalAddress(mapped), pair, tx.sentPriority);
    if (pair.validAt === undefined) pair.validAt = this.now;
    this.setPairState(pair, 'succeeded');
    // RFC 8445 section 7.2.5.3.3: a success unfreezes the pairs of the same foundation.
    for (const p of this.pairList) if (p.state === 'frozen' && p.foundation === pair.foundation) this.setPairState(p, 'waiting');
    if ((tx.useCandidate && this.roleValue === 'controlling') || (pair.nominateOnSuccess && this.roleValue === 'controlled')) {
      this.markNominated(pair);
    }
    if (this.selected !== undefined) this.updateConnectedState();
  }

  /**
   * The local candidate whose address the peer saw (RFC 8445 section 7.2.5.3.1); an unknown
   * address is a new peer-reflexive candidate with the PRIORITY the check carried.
   */
  protected mappedLocalCandidate(mapped: TransportAddress, pair: Pair, sentPriority: number): LocalCandidate {
    const key = keyOf(mapped);
    const known = this.locals.find((l) => l.key === key);
    if (known !== undefined) return known;
    const base = pair.local;
    const candidate: IceCandidate = {
      foundation: candidateFoundation({ type: 'prflx', baseAddress: base.address.address, transport: 'udp' }),
      component: COMPONENT,
      transport: 'udp',
      priority: sentPriority,
      address: mapped.address,
      port: mapped.port,
      type: 'prflx',
      relatedAddress: base.address.address,
      relatedPort: base.address.port,
      extensions: [],
    };
    const local: LocalCandidate = { candidate, base: base.base, address: mapped, key };
    this.locals.push(local);
    this.events.push({ type: 'local-candidate', candidate, base: base.base });
    return local;
  }
}
