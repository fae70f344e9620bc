/**
 * The ICE agent's third part: what it does with the pairs that work. The controlling side's
 * nomination (RFC 8445 section 8.1.1, relay first then a direct upgrade, with the wait for a
 * pending IPv6 pair of RFC 8421), the selected pair and the connected/completed state, consent
 * freshness on the selected pair (RFC 7675) and the failure of the whole checklist.
 */
import { encodeKeepalive } from './messages.js';
import { IceConnectivityChecks } from './checks.js';
import { IPV6_NOMINATION_WAIT, type Pair, isPending, pairInfo } from './pair.js';
import { isGlobalIPv6 } from './family.js';
import { type IceFailureReason, pathOf } from './types.js';

/** Nomination, selection, consent and failure; see the module documentation. */
export abstract class IceSelection extends IceConnectivityChecks {
  /** Everything that is due at `this.now`. */
  protected run(): void {
    if (this.stateValue === 'closed') return;
    const now = this.now;
    this.runTransactions(now);
    if (this.canCheck() && now >= this.nextCheckAt) {
      if (this.sendNextCheck()) this.nextCheckAt = now + this.opts.ta;
    }
    const nomination = this.nominationDue();
    if (nomination !== undefined && nomination.at <= now) this.nominate(nomination.pair);
    this.runConsent(now);
    this.checkFailure(now);
  }

  /** The pair the controlling agent should nominate next, and when. */
  protected nominationDue(): { pair: Pair; at: number } | undefined {
    if (this.roleValue !== 'controlling' || this.nominating !== undefined || !this.canCheck()) return undefined;
    const current = this.selected !== undefined && this.pairList.includes(this.selected) ? this.selected : undefined;
    if (current !== undefined && pathOf(current.local.candidate.type, current.remote.candidate.type) === 'direct') return undefined;
    const best = this.pairList.find(
      (p) => p.state === 'succeeded' && !p.nominated && (current === undefined || pathOf(p.local.candidate.type, p.remote.candidate.type) === 'direct'),
    );
    if (best === undefined || best.validAt === undefined) return undefined;
    const relay = pathOf(best.local.candidate.type, best.remote.candidate.type) === 'relay';
    if (relay && current === undefined && this.opts.relayFirst) return { pair: best, at: best.validAt };
    return { pair: best, at: this.nominationTime(best, best.validAt) };
  }

  /**
   * When to nominate `best` (valid since `validAt`) while pairs of higher priority are pending
   * (RFC 8445 section 8.1.1 leaves this to the controlling agent): at most `nominationDelay`
   * later, and for a pair already being checked no longer than it could still answer, two round
   * trips of `best` plus Ta after its check went out. A higher-priority pair that never answers
   * (a host candidate in the other side's private network) then costs a few ms, not the whole
   * delay; one not yet checked keeps the whole delay, and so does one toward a global IPv6
   * address (RFC 8421: the pair to prefer), whose first check a stateful firewall at the peer
   * usually drops until the peer's own check opens it.
   */
  protected nominationTime(best: Pair, validAt: number): number {
    const latest = validAt + this.opts.nominationDelay;
    let at = validAt;
    for (const p of this.pairList) {
      if (p.priority <= best.priority || !isPending(p)) continue;
      if (isGlobalIPv6(p.remote.address.address)) return validAt + Math.max(this.opts.nominationDelay, IPV6_NOMINATION_WAIT);
      if (p.state !== 'in-progress' || p.checkStartedAt === undefined) return latest;
      at = Math.max(at, p.checkStartedAt + 2 * (best.rttMs ?? 0) + this.opts.ta);
    }
    return Math.min(at, latest);
  }

  /** The controlling agent nominates: a check with USE-CANDIDATE on a valid pair (RFC 8445 section 8.1.1). */
  protected nominate(pair: Pair): void {
    this.nominating = pair;
    this.enqueueTriggered(pair, true);
    if (this.now >= this.nextCheckAt && this.sendNextCheck()) this.nextCheckAt = this.now + this.opts.ta;
  }

  protected markNominated(pair: Pair): void {
    pair.nominateOnSuccess = false;
    if (!pair.nominated) {
      pair.nominated = true;
      this.emitPair(pair);
    }
    this.updateSelected();
  }

  protected updateSelected(): void {
    const best = this.pairList.find((p) => p.nominated && p.state === 'succeeded');
    if (best === undefined || best === this.selected) return;
    const current = this.selected;
    if (current !== undefined && this.pairList.includes(current) && best.priority < current.priority) return;
    this.selected = best;
    best.consentAt = this.now;
    this.nextConsentAt = this.now + this.consentDelay();
    this.events.push({ type: 'selected-pair', pair: pairInfo(best), previous: current === undefined ? undefined : pairInfo(current) });
    this.updateConnectedState();
  }

  protected updateConnectedState(): void {
    const s = this.selected;
    if (s === undefined || this.stateValue === 'closed') return;
    const direct = pathOf(s.local.candidate.type, s.remote.candidate.type) === 'direct';
    const better = this.pairList.some((p) => p.priority > s.priority && isPending(p));
    this.setState(direct && !better ? 'completed' : 'connected');
  }

  /** RFC 7675 section 5.1: consent checks at a randomised interval, 0.8 to 1.2 times the mean. */
  protected consentDelay(): number {
    return this.opts.consentInterval * (0.8 + 0.4 * this.opts.random());
  }

  protected runConsent(now: number): void {
    const s = this.selected;
    if (s === undefined || this.remoteKey === undefined || this.stateValue === 'failed' || this.stateValue === 'closed') return;
    const silent = now - s.consentAt;
    if (silent >= this.opts.consentTimeout) {
      // RFC 7675 section 5.1: consent expired; the driver must stop sending on the pair.
      this.selected = undefined;
      this.transactions.clear();
      this.triggered = [];
      this.setState('failed', 'consent-expired');
      return;
    }
    if (silent >= this.opts.disconnectedTimeout) this.setState('disconnected');
    if (now >= this.nextConsentAt) {
      this.startCheck(s, false, 'consent');
      this.nextConsentAt = now + this.consentDelay();
    }
    if (now - s.lastSentAt >= this.opts.keepaliveInterval) this.send(s, encodeKeepalive());
  }

  protected checkFailure(now: number): void {
    if (this.selected !== undefined || this.startedAt === undefined) return;
    if (this.stateValue === 'failed' || this.stateValue === 'closed') return;
    if (now >= this.startedAt + this.opts.failureTimeout) {
      this.fail(this.remotes.size === 0 ? 'no-remote-candidates' : 'timeout');
      return;
    }
    if (this.localEnded && this.remoteEnded && this.pairList.length > 0 && this.triggered.length === 0 && this.pairList.every((p) => p.state === 'failed')) {
      this.fail('all-pairs-failed');
    }
  }

  protected fail(reason: IceFailureReason): void {
    this.transactions.clear();
    this.triggered = [];
    this.setState('failed', reason);
  }
}
