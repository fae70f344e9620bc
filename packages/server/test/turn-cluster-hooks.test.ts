/**
 * The TURN core's hooks for state shared between nodes (issue 18), sans I/O: an authenticator
 * whose store is down gets the request a 500 (never an allocation, never a 401 that would make
 * the client drop a good password); `anyOf` still answers from a source that knows the user; a
 * refusal of the cluster's ledger answers the pending Allocate with 486 (508 for the total, 500
 * when the ledger did not answer), signed, with its `refused` event, and frees the local slot.
 */
import { Attr, StunClass, StunMethod, attr, decodeStunMessage, encodeStunMessage, longTermKey, type StunMessage } from '@nat/protocol';
import { describe, expect, it } from 'vitest';
import { type ClientEndpoint, type ServerEvent, TurnAuthUnavailableError, TurnCore, type TurnAuthenticator, anyOf, staticUsers } from '../src/index.js';

const SERVER = { family: 'IPv4' as const, address: '203.0.113.1', port: 3478 };
let port = 6000;
const endpointOf = (): ClientEndpoint => {
  const p = port++;
  return { key: `udp|198.51.100.7|${p}`, client: { family: 'IPv4', address: '198.51.100.7', port: p }, server: SERVER, transport: 'udp' };
};

const down: TurnAuthenticator = {
  keys() {
    throw new TurnAuthUnavailableError('the user database did not answer');
  },
};

/** Allocates as `username`/`password` (the 401 round first); returns the answer and the allocation id asked to open, if any. */
function allocate(
  core: TurnCore,
  username: string,
  password: string,
  now = 1_700_000_000_000,
): { answer: StunMessage | undefined; opened: number | undefined } {
  const endpoint = endpointOf();
  const base = [attr(Attr.RequestedTransport, 17)];
  core.handleStun(decodeStunMessage(encodeStunMessage({ method: StunMethod.Allocate, class: StunClass.Request, attributes: base })), endpoint, now);
  const challenge = core.drain().find((o) => o.kind === 'to-client');
  const nonce = decodeStunMessage((challenge as { bytes: Uint8Array }).bytes).get(Attr.Nonce)!;
  const attributes = [...base, attr(Attr.Username, username), attr(Attr.Realm, 'r'), attr(Attr.Nonce, nonce)];
  const signed = encodeStunMessage(
    { method: StunMethod.Allocate, class: StunClass.Request, attributes },
    { integrity: longTermKey({ username, realm: 'r', password }) },
  );
  core.handleStun(decodeStunMessage(signed), endpoint, now);
  const out = core.drain();
  const open = out.find((o) => o.kind === 'open-relay');
  const reply = out.find((o) => o.kind === 'to-client');
  return {
    answer: reply?.kind === 'to-client' ? decodeStunMessage(reply.bytes) : undefined,
    opened: open?.kind === 'open-relay' ? open.allocation : undefined,
  };
}

describe('TURN core: a remote user store', () => {
  it('answers 500 while the store is down, and still serves users another source knows', () => {
    const events: ServerEvent[] = [];
    const core = new TurnCore({ realm: 'r', auth: anyOf(staticUsers({ local: 'p' }), down), events: (e) => events.push(e) });
    const refused = allocate(core, 'remote', 'p');
    expect(refused.opened).toBeUndefined();
    expect(refused.answer?.class).toBe(StunClass.ErrorResponse);
    expect(refused.answer?.get(Attr.ErrorCode)?.code).toBe(500);
    // Not taken for wrong credentials (only the first, unsigned request's challenge is an auth-failure).
    expect(events.filter((e) => e.type === 'auth-failure').map((e) => (e as { reason: string }).reason)).toEqual(['missing']);
    expect(allocate(core, 'local', 'p').opened).toBeDefined();
    // Without any source that knows the user, a store that answers nothing is a 401.
    expect(allocate(new TurnCore({ realm: 'r', auth: anyOf(staticUsers({ local: 'p' })) }), 'remote', 'p').answer?.get(Attr.ErrorCode)?.code).toBe(401);
  });

  it('passes prepare through anyOf only when a source has one', async () => {
    expect(anyOf(staticUsers({ a: 'b' })).prepare).toBeUndefined();
    let asked = '';
    const remote: TurnAuthenticator = { keys: () => [], prepare: (u) => ((asked = u), Promise.resolve()) };
    const both = anyOf(staticUsers({ a: 'b' }), remote);
    await both.prepare!('carol', 'r', 0);
    expect(asked).toBe('carol');
  });
});

describe("TURN core: the cluster ledger's refusal", () => {
  for (const [refusal, code, cause] of [
    ['user', 486, 'user-quota'],
    ['source', 486, 'source-share'],
    ['total', 508, 'global-cap'],
    ['unavailable', 500, undefined],
  ] as const) {
    it(`${refusal}: ${code}, signed, and the local slot comes back`, () => {
      const events: ServerEvent[] = [];
      const core = new TurnCore({ realm: 'r', auth: staticUsers({ u: 'p' }), userQuota: 1, events: (e) => events.push(e) });
      const { opened, answer } = allocate(core, 'u', 'p');
      expect(answer).toBeUndefined(); // waiting for the relay (and the ledger)
      core.relayRefused(opened!, refusal);
      const reply = core.drain().find((o) => o.kind === 'to-client');
      const m = decodeStunMessage((reply as { bytes: Uint8Array }).bytes);
      expect(m.get(Attr.ErrorCode)?.code).toBe(code);
      expect(m.integrityOffset).toBeGreaterThan(0);
      expect(core.size).toBe(0);
      if (cause !== undefined) expect(events).toContainEqual(expect.objectContaining({ type: 'refused', service: 'turn', cause, pool: 'allocations' }));
      // The user's one local slot is free again: the next Allocate is admitted here.
      expect(allocate(core, 'u', 'p').opened).toBeDefined();
    });
  }
});
