/**
 * What rendezvous nodes sharing a store (Redis pub/sub) tell each other, as one text line each
 * (the first line of a `deliver`): fields separated by single spaces, none of them holding one.
 *
 * - `D <to>\n<text>`: relay `text` (a signalling message that passed the sending node's checks)
 *   to peer `to`, registered on the receiving node.
 * - `R <peerId> <seq>`: `peerId` registered on another node with sequence number `seq`; the
 *   receiving node closes an older connection of that peer (newest wins).
 * - `S <origin> <op> <peer> <ip> <arg> <now>`: a write to the anonymous relay scope made on node
 *   `origin` (op `a`: add, arg the scope kind; `c`: claim, arg the claimant; `s`: sighted, arg `-`),
 *   followed by up to {@link MAX_CLUSTER_SCOPE_WRITES} - 1 more writes of the same node, one per
 *   line: `\n<op> <peer> <ip> <arg> <now>` (all the addresses one signalling message records go
 *   in one message). A message of one write is the single line nodes sent before batching, so
 *   those nodes and the batching ones read each other's single writes.
 */
import { DecodeError, EncodeError } from '../errors.js';

/** The scope writes mirrored between nodes. */
export type ClusterScopeOp = 'a' | 'c' | 's';

/** One write to the relay scope, as mirrored between nodes. */
export interface ClusterScopeWrite {
  readonly op: ClusterScopeOp;
  readonly peer: string;
  readonly ip: string;
  readonly arg: string;
  readonly now: number;
}

/** Most relay-scope writes one cluster message carries. */
export const MAX_CLUSTER_SCOPE_WRITES = 64;

/** One message between rendezvous nodes. */
export type ClusterMessage =
  | { readonly type: 'deliver'; readonly to: string; readonly text: string }
  | { readonly type: 'replaced'; readonly peerId: string; readonly seq: number }
  | { readonly type: 'scope'; readonly origin: string; readonly writes: readonly ClusterScopeWrite[] };

/** Largest field of a cluster message's header line (a peer id, a node id, an IP), characters. */
export const MAX_CLUSTER_FIELD = 128;

const FIELD = /^[\x21-\x7e]{1,128}$/;

function field(name: string, v: string): string {
  if (!FIELD.test(v)) throw new EncodeError('BAD_VALUE', `cluster message: ${name} must be 1-${MAX_CLUSTER_FIELD} printable characters without spaces`);
  return v;
}

function count(name: string, v: number): string {
  if (!Number.isSafeInteger(v) || v < 0) throw new EncodeError('BAD_VALUE', `cluster message: ${name} must be a non-negative integer`);
  return String(v);
}

/** The text of a cluster message. Throws EncodeError when a field would not survive decoding. */
export function encodeClusterMessage(m: ClusterMessage): string {
  switch (m.type) {
    case 'deliver':
      return `D ${field('to', m.to)}\n${m.text}`;
    case 'replaced':
      return `R ${field('peerId', m.peerId)} ${count('seq', m.seq)}`;
    case 'scope':
      if (m.writes.length < 1 || m.writes.length > MAX_CLUSTER_SCOPE_WRITES) {
        throw new EncodeError('BAD_VALUE', `cluster message: 1-${MAX_CLUSTER_SCOPE_WRITES} scope writes`);
      }
      return `S ${field('origin', m.origin)} ${m.writes.map(scopeWrite).join('\n')}`;
  }
}

function scopeWrite(w: ClusterScopeWrite): string {
  if (w.op !== 'a' && w.op !== 'c' && w.op !== 's') throw new EncodeError('BAD_VALUE', 'cluster message: scope op must be a, c or s');
  return `${w.op} ${field('peer', w.peer)} ${field('ip', w.ip)} ${field('arg', w.arg)} ${count('now', w.now)}`;
}

const bad = (why: string): never => {
  throw new DecodeError('BAD_SYNTAX', `cluster message: ${why}`);
};

function num(text: string | undefined): number {
  const n = text !== undefined && /^\d{1,16}$/.test(text) ? Number(text) : NaN;
  return Number.isSafeInteger(n) ? n : bad('not a non-negative integer');
}

/** Decodes a cluster message. Throws DecodeError for anything else. */
export function decodeClusterMessage(text: string): ClusterMessage {
  const nl = text.indexOf('\n');
  const head = (nl < 0 ? text : text.slice(0, nl)).split(' ');
  for (const f of head.slice(1)) if (!FIELD.test(f)) bad('a field is empty, too long or not printable');
  switch (head[0]) {
    case 'D':
      if (nl < 0 || head.length !== 2) bad('deliver: D <to>\\n<text>');
      return { type: 'deliver', to: head[1]!, text: text.slice(nl + 1) };
    case 'R':
      if (nl >= 0 || head.length !== 3) bad('replaced: R <peerId> <seq>');
      return { type: 'replaced', peerId: head[1]!, seq: num(head[2]) };
    case 'S':
      return decodeScope(text);
    default:
      return bad('unknown type');
  }
}

const SCOPE_SYNTAX = 'scope: S <origin> <a|c|s> <peer> <ip> <arg> <now>, then <a|c|s> <peer> <ip> <arg> <now> per line';

function decodeScope(text: string): ClusterMessage {
  const lines = text.split('\n');
  if (lines.length > MAX_CLUSTER_SCOPE_WRITES) bad(`scope: more than ${MAX_CLUSTER_SCOPE_WRITES} writes`);
  const first = lines[0]!.split(' ');
  if (first.length !== 7) bad(SCOPE_SYNTAX);
  const writes = [decodeWrite(first.slice(2))];
  for (const line of lines.slice(1)) {
    const f = line.split(' ');
    if (f.length !== 5 || !f.every((x) => FIELD.test(x))) bad(SCOPE_SYNTAX);
    writes.push(decodeWrite(f));
  }
  return { type: 'scope', origin: first[1]!, writes };
}

function decodeWrite(f: readonly string[]): ClusterScopeWrite {
  const op = f[0];
  if (op !== 'a' && op !== 'c' && op !== 's') return bad(SCOPE_SYNTAX);
  return { op, peer: f[1]!, ip: f[2]!, arg: f[3]!, now: num(f[4]) };
}
