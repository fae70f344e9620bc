/**
 * A failed ICE connection explained from what it observed ({@link ConnectionDiagnosis}): which
 * candidates each side had, whether a relay was offered and obtained, which permissions the
 * relay refused; and the flag that fixes what was observed. Nothing here guesses: a hint is
 * given only when the observation behind it was made.
 */
import type { CandidateCounts, ConnectionDiagnosis } from '@nat/client';
import { deniedRange } from './peer-ranges.js';

function counts(c: CandidateCounts): string {
  const parts: string[] = [];
  if (c.host > 0) parts.push(`${c.host} host${c.loopbackHost > 0 ? ` (${c.loopbackHost} loopback)` : ''}`);
  if (c.srflx > 0) parts.push(`${c.srflx} server-reflexive`);
  if (c.prflx > 0) parts.push(`${c.prflx} peer-reflexive`);
  if (c.relay > 0) parts.push(`${c.relay} relay`);
  return parts.length === 0 ? 'none' : parts.join(', ');
}

const isLoopback = (ip: string): boolean => deniedRange(ip)?.what === 'loopback';

/** What was observed, one line each (indented by the caller). */
export function observations(d: ConnectionDiagnosis): string[] {
  const lines = [
    `this side's candidates: ${counts(d.local)}${d.hostCandidates ? '' : ' (host candidates off: --relay-only)'}; the peer's: ${counts(d.remote)}`,
  ];
  const servers = [...d.iceServers.stun.map((s) => `stun:${s}`), ...d.iceServers.turn.map((t) => `turn:${t}`)];
  if (d.relay === 'not-offered')
    lines.push(
      `no relay was offered by the rendezvous: the ICE servers it handed out were ${servers.length === 0 ? 'none' : servers.join(', ')} (no TURN server with credentials)`,
    );
  else if (d.relay === 'failed') lines.push(`no relay: the TURN server refused or did not answer (${d.relayErrors.join('; ')})`);
  else if (d.relay === 'obtained') lines.push('this side got a relayed address from the TURN server');
  const refused = d.permissionsRefused.map((p) => `${p.ip} (${p.code ?? 'no answer'})`);
  if (refused.length > 0) lines.push(`the relay refused permissions toward the peer's addresses: ${refused.join(', ')}`);
  if (d.peerBye !== undefined) lines.push(`the peer ended the session: ${d.peerBye}`);
  return lines;
}

/** The flags that fix what was observed; empty when nothing observed points at one. */
export function hints(d: ConnectionDiagnosis): string[] {
  const out: string[] = [];
  const forbidden = d.permissionsRefused
    .filter((p) => p.code === 403)
    .map((p) => deniedRange(p.ip))
    .filter((r) => r !== undefined);
  const cidrs = [...new Set(forbidden.map((r) => r.cidr))];
  if (cidrs.length > 0) {
    const what = [...new Set(forbidden.map((r) => r.what))].join('/');
    out.push(`the relay refuses ${what} peers by default (403 Forbidden): start nat-server with ${cidrs.map((c) => `--allow-peer ${c}`).join(' ')}`);
  }
  if (d.relay === 'not-offered') {
    out.push(
      'a nat-server rendezvous hands out its relay (TURN REST credentials) only when started with --realm and --auth-secret; static --user accounts are not handed out',
    );
  }
  const peerOnLoopback = d.remoteRelaySeenAt.some(isLoopback);
  if (d.serversOnLoopback && peerOnLoopback && d.hostCandidates && d.local.loopbackHost === 0 && d.remote.loopbackHost === 0) {
    out.push(
      "the rendezvous is on this machine's loopback and the TURN server saw the peer on loopback too, but neither side gathered a loopback host candidate: give both sides --host-address 127.0.0.1",
    );
  }
  if (!d.hostCandidates && d.local.relay === 0 && d.relay !== 'obtained')
    out.push('--relay-only leaves this side no candidate without a relay: drop --relay-only');
  return out;
}

/** The failure in words: `first` (the error) then the observations and hints, each on its own line. */
export function explainFailure(first: string, d: ConnectionDiagnosis | undefined): string {
  if (d === undefined) return `${first}\n`;
  const lines = [first, ...observations(d).map((l) => `  observed: ${l}`), ...hints(d).map((h) => `  fix: ${h}`)];
  return `${lines.join('\n')}\n`;
}
