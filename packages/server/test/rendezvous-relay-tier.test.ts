/** anonymousRelayTier: one helper wires what TURN and the rendezvous share for the anonymous tier. */
import { PasswordAlgorithm, anonymousRelayCredentials, restApiCredentials } from '@nat/protocol';
import { describe, expect, it } from 'vitest';
import { ServerError } from '../src/errors.js';
import { MemoryRelayScope, anonymousRelayTier } from '../src/rendezvous/index.js';
import { staticUsers } from '../src/turn/auth.js';

const PEER = 'abcdefghijklmnopqrstuvwxyz234567';
const keysOf = (tier: ReturnType<typeof anonymousRelayTier>, user: string): number => tier.auth.keys(user, 'r', PasswordAlgorithm.MD5, Date.now()).length;

describe('anonymousRelayTier', () => {
  it("takes the operator's REST credentials and the anonymous ones; the rendezvous signs with the first secret; TURN tiers narrow anonymous peers only", () => {
    const tier = anonymousRelayTier({ secrets: ['new-secret', 'old-secret'], ownRelayIps: ['127.0.0.1'], perPeer: 1 });
    const now = Date.now();
    expect(keysOf(tier, restApiCredentials('old-secret', 'alice', 60, now).username)).toBe(2); // one candidate key per secret
    const anon = anonymousRelayCredentials('new-secret', PEER, 60, now);
    expect(keysOf(tier, anon.username)).toBe(2);
    expect(keysOf(tier, 'mallory')).toBe(0);
    const { auth, tiers } = tier.turn();
    expect(auth).toBe(tier.auth);
    expect(tier.turn().tiers).not.toBe(tiers); // one RelayTiers per TURN server
    expect(tiers.allocate('alice', 'tcp', now)).toBeUndefined(); // an operator's user: not narrowed
    expect(tiers.allocate(anon.username, 'tcp', now)).toMatchObject({ code: 442 });
    // perPeer 1: the tier hands its limits to the TURN core's one ledger (TurnQuotas), which counts
    expect(tiers.allocate(anon.username, 'udp', now)).toMatchObject({ quota: { perUser: 1 } });
    expect(tier.rendezvous(['turn:127.0.0.1:3478'], 300)).toEqual({
      scope: tier.scope,
      turn: { urls: ['turn:127.0.0.1:3478'], secret: 'new-secret', ttl: 300 },
    });
  });

  it("with the operator's users given, those (not REST credentials) are the operator tier; a given scope is shared", () => {
    const scope = new MemoryRelayScope();
    const tier = anonymousRelayTier({ secrets: ['s3cret'], users: staticUsers({ alice: 'pw' }), ownRelayIps: [], scope });
    expect(tier.scope).toBe(scope);
    expect(keysOf(tier, 'alice')).toBe(1);
    expect(keysOf(tier, restApiCredentials('s3cret', 'bob', 60, Date.now()).username)).toBe(0);
    expect(tier.rendezvous(['turn:x']).turn).toEqual({ urls: ['turn:x'], secret: 's3cret' });
  });

  it('refuses to wire a tier without a secret', () => {
    expect(() => anonymousRelayTier({ secrets: [], ownRelayIps: [] })).toThrow(ServerError);
    expect(() => anonymousRelayTier({ secrets: [''], ownRelayIps: [] })).toThrow(/at least one non-empty secret/);
  });
});
