/**
 * A failed ICE connection explained from what it observed ({@link ConnectionDiagnosis}): which
 * candidates each side had, whether a relay was offered and obtained, which permissions the
 * relay refused; and the flag that fixes what was observed. Nothing here guesses: a hint is
 * given only when the observation behind it was made.
 */
import type { CandidateCounts, ConnectionDiagnosis } from '@nat/client';
import { ipFamily, ipToBytes } from '@nat/protocol';

/** The ranges a relay refuses by default that a peer on one machine or a LAN sits in, as `--allow-peer` takes them. */
const RANGES: ReadonlyArray<{ readonly cidr: string; readonly what: string }> = [
  { cidr: '127.0.0.0/8', what: 'loopback' },
  { cidr: '10.0.0.0/8', what: 'private' },
  { cidr: '172.16.0.0/12', what: 'private' },
  { cidr: '192.168.0.0/16', what: 'private' },
  { cidr: '100.64.0.0/10', what: 'carrier-grade NAT' },
  { cidr: '169.254.0.0/16', what: 'link-local' },
  { cidr: '::1/128', what: 'loopback' },
  { cidr: 'fc00::/7', what: 'unique local' },
  { cidr: 'fe80::/10', what: 'link-local' },
];

function inCidr(ip: string, cidr: string): boolean {
  const [net, len] = cidr.split('/') as [string, string];
  if (ipFamily(ip) !== ipFamily(net)) return false;
  const a = ipToBytes(ip);
  const b = ipToBytes(net);
  let bits = Number(len);
  for (let i = 0; bits > 0; i++, bits -= 8) {
    const mask = bits >= 8 ? 0xff : (0xff << (8 - bits)) & 0xff;
    if ((a[i]! & mask) !== (b[i]! & mask)) return false;
  }
  return true;
}

/** The loopback or private range `ip` is in (the one to name in `--allow-peer`), if any. */
export function privateRange(ip: string): { readonly cidr: string; readonly what: string } | undefined {
  return ipFamily(ip) === undefined ? undefined : RANGES.find((r) => inCidr(ip, r.cidr));
}

function counts(c: CandidateCounts): string {
  const parts: string[] = [];
  if (c.host > 0) parts.push(`${c.host} host${c.loopbackHost > 0 ? ` (${c.loopbackHost} loopback)` : ''}`);
  if (c.srflx > 0) parts.push(`${c.srflx} server-reflexive`);
  if (c.prflx > 0) parts.push(`${c.prflx} peer-reflexive`);
  if (c.relay > 0) parts.push(`${c.relay} relay`);
  return parts.length === 0 ? 'none' : parts.join(', ');
}

const isLoopback = (ip: string): boolean => privateRange(ip)?.what === 'loopback';

/** What was observed, one line each (indented by the caller). */
export function observations(d: ConnectionDiagnosis): string[] {
  const lines = [`this side's candidates: ${counts(d.local)}${d.hostCandidates ? '' : ' (host candidates off: --relay-only)'}; the peer's: ${counts(d.remote)}`];
  const servers = [...d.iceServers.stun.map((s) => `stun:${s}`), ...d.iceServers.turn.map((t) => `turn:${t}`)];
  if (d.relay === 'not-offered') lines.push(`no relay was offered by the rendezvous: the ICE servers it handed out were ${servers.length === 0 ? 'none' : servers.join(', ')} (no TURN server with credentials)`);
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
  const forbidden = d.permissionsRefused.filter((p) => p.code === 403).map((p) => privateRange(p.ip)).filter((r) => r !== undefined);
  const cidrs = [...new Set(forbidden.map((r) => r.cidr))];
  if (cidrs.length > 0) {
    const what = [...new Set(forbidden.map((r) => r.what))].join('/');
    out.push(`the relay refuses ${what} peers by default (403 Forbidden): start nat-server with ${cidrs.map((c) => `--allow-peer ${c}`).join(' ')}`);
  }
  if (d.relay === 'not-offered') {
    out.push('a nat-server rendezvous hands out its relay (TURN REST credentials) only when started with --realm and --auth-secret; static --user accounts are not handed out');
  }
  const peerOnLoopback = d.remoteRelaySeenAt.some(isLoopback);
  if (d.serversOnLoopback && peerOnLoopback && d.hostCandidates && d.local.loopbackHost === 0 && d.remote.loopbackHost === 0) {
    out.push('the rendezvous is on this machine\'s loopback and the TURN server saw the peer on loopback too, but neither side gathered a loopback host candidate: give both sides --host-address 127.0.0.1');
  }
  if (!d.hostCandidates && d.local.relay === 0 && d.relay !== 'obtained') out.push('--relay-only leaves this side no candidate without a relay: drop --relay-only');
  return out;
}

/** The failure in words: `first` (the error) then the observations and hints, each on its own line. */
export function explainFailure(first: string, d: ConnectionDiagnosis | undefined): string {
  if (d === undefined) return `${first}\n`;
  const lines = [first, ...observations(d).map((l) => `  observed: ${l}`), ...hints(d).map((h) => `  fix: ${h}`)];
  return `${lines.join('\n')}\n`;
}
