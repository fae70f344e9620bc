import { ServerError } from '../errors.js';
import type { Logger } from '../logger.js';
import { type TurnAuthenticator, anonymousRelayUsers, anyOf, restApiSecrets } from '../turn/auth.js';
import { type AnonymousRelayLimits, RelayTiers } from '../turn/tiers.js';
import type { RendezvousTurnOptions } from './options.js';
import { MemoryRelayScope, type RelayScope } from './scope.js';

/** Options of {@link anonymousRelayTier}. */
export interface AnonymousRelayTierOptions extends AnonymousRelayLimits {
  /**
   * The shared REST API secrets: the first one signs the anonymous credentials the rendezvous
   * hands out; TURN accepts credentials made with any of them (several while rotating).
   */
  readonly secrets: readonly string[];
  /**
   * The operator's users, who keep full relaying as configured (static users, a users file, REST
   * credentials). Default: REST API credentials made with `secrets` (`restApiSecrets(secrets)`).
   */
  readonly users?: TurnAuthenticator;
  /** The TURN server's own relay addresses (see `RelayTiersOptions.ownRelayIps`). */
  readonly ownRelayIps: readonly string[];
  /** Where the rendezvous records what sessions signal. Default a new in-process {@link MemoryRelayScope}. */
  readonly scope?: RelayScope;
  readonly logger?: Logger;
}

/**
 * The anonymous trust tier of one nat-server: the pieces its TURN server and its rendezvous share
 * (one scope, one set of secrets), so that peers the rendezvous hands credentials to can relay
 * toward what their sessions signalled, and nothing else.
 */
export interface AnonymousRelayTier {
  /** What the rendezvous records and the TURN tiers read. */
  readonly scope: RelayScope;
  /** The operator's users plus the anonymous relay credentials: TURN's `auth`. */
  readonly auth: TurnAuthenticator;
  /**
   * The TURN options of this tier, for `startStunServer({ turn: { realm, ...tier.turn() } })`: the
   * authenticator and a new `RelayTiers` (one per TURN server; its counters are that server's).
   */
  turn(): { readonly auth: TurnAuthenticator; readonly tiers: RelayTiers };
  /**
   * The rendezvous options of this tier, for `startRendezvous({ host, port, ...tier.rendezvous(urls) })`:
   * the scope and anonymous credentials for `urls` (the STUN/TURN URIs), valid `ttl` seconds
   * (default the rendezvous's, one day).
   */
  rendezvous(urls: readonly string[], ttl?: number): { readonly scope: RelayScope; readonly turn: RendezvousTurnOptions };
}

/**
 * Wires the anonymous tier of a server: TURN takes the operator's users and the anonymous relay
 * credentials, narrowed by `RelayTiers` (relay only, per-peer quota, bandwidth, a total share,
 * toward what the peer's sessions signalled in `scope`); the rendezvous hands the credentials out
 * and records the scope. Throws ServerError BAD_CONFIG without a secret.
 *
 * @example
 * ```ts
 * const tier = anonymousRelayTier({ secrets: [secret], ownRelayIps: ['203.0.113.7'] });
 * const stun = await startStunServer({ listen: ['203.0.113.7'], turn: { realm, ...tier.turn() } });
 * const rv = await startRendezvous({ host: '203.0.113.7', port: 8443, ...tier.rendezvous(['turn:203.0.113.7:3478']) });
 * ```
 */
export function anonymousRelayTier(options: AnonymousRelayTierOptions): AnonymousRelayTier {
  const secrets = options.secrets;
  if (secrets.length === 0 || secrets.some((s) => typeof s !== 'string' || s === '')) {
    throw new ServerError('BAD_CONFIG', 'anonymous relay tier: give at least one non-empty secret');
  }
  const scope = options.scope ?? new MemoryRelayScope();
  const auth = anyOf(options.users ?? restApiSecrets(secrets), anonymousRelayUsers(secrets));
  const { perPeer, total, bandwidth, totalBandwidth, ownRelayIps, logger } = options;
  const limits = Object.fromEntries(Object.entries({ perPeer, total, bandwidth, totalBandwidth }).filter(([, v]) => v !== undefined)) as AnonymousRelayLimits;
  return {
    scope,
    auth,
    turn: () => ({ auth, tiers: new RelayTiers({ scope, ownRelayIps, ...limits, ...(logger ? { logger } : {}) }) }),
    rendezvous: (urls, ttl) => ({ scope, turn: { urls, secret: secrets[0]!, ...(ttl === undefined ? {} : { ttl }) } }),
  };
}
