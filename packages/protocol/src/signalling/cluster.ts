/**
 * What rendezvous nodes sharing a store (Redis pub/sub) tell each other, as one text line each
 * (the first line of a `deliver`): fields separated by single spaces, none of them holding one.
 *
 * - `D <to>\n<text>`: relay `text` (a signalling message that passed the sending node's checks)
 *   to peer `to`, registered on the receiving node.
 * - `R <peerId> <seq>`: `peerId` registered on another node with sequence number `seq`; the
 *   receiving node closes an older connection of that peer (newest wins).
 * - `S <origin> <op> <peer> <ip> <arg> <now>`: a write to the anonymous relay scope made on node
 *   `origin` (op `a`: add, arg the scope kind; `c`: claim, arg the claimant; `s`: sighted, arg `-`).
 */
import { DecodeError, EncodeError } from '../errors.js';

/** The scope writes mirrored between nodes. */
export type ClusterScopeOp = 'a' | 'c' | 's';

/** One message between rendezvous nodes. */
export type ClusterMessage =
  | { readonly type: 'deliver'; readonly to: string; readonly text: string }
  | { readonly type: 'replaced'; readonly peerId: string; readonly seq: number }
  | {
      readonly type: 'scope';
      readonly origin: string;
      readonly op: ClusterScopeOp;
      readonly peer: string;
      readonly ip: string;
      readonly arg: string;
      readonly now: number;
    };

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
      return `S ${field('origin', m.origin)} ${m.op} ${field('peer', m.peer)} ${field('ip', m.ip)} ${field('arg', m.arg)} ${count('now', m.now)}`;
  }
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
    case 'S': {
      const op = head[2];
      if (nl >= 0 || head.length !== 7 || (op !== 'a' && op !== 'c' && op !== 's')) bad('scope: S <origin> <a|c|s> <peer> <ip> <arg> <now>');
      return { type: 'scope', origin: head[1]!, op: op as ClusterScopeOp, peer: head[3]!, ip: head[4]!, arg: head[5]!, now: num(head[6]) };
    }
    default:
      return bad('unknown type');
  }
}
