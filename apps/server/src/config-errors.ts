import type { z } from 'zod';

/**
 * Turns zod issues about a `nat-server` configuration into sentences a user can act on: each
 * names the key (the flag when the value came from a flag, else the config file key), says what
 * the key expects in words (the schema's description) and what it got, e.g.
 *
 *     config key "listen": expected an IP address or a list of up to 2 IP addresses (one per family), got the string "localhost"
 *     --alternate: expected an IP address or ..., got the list ["127.0.0.2", "300.1.1.1"] (item 2, "300.1.1.1", is not an IP address)
 */

/** The flag of each config key that has one (`nat-server --help` lists them). */
export const FLAG_OF_KEY: Readonly<Record<string, string>> = {
  listen: '--listen',
  alternate: '--alternate',
  port: '--port',
  altPort: '--alt-port',
  tcp: '--no-tcp',
  externalIps: '--external-ip',
  tlsPort: '--tls-port',
  tlsCert: '--tls-cert',
  tlsKey: '--tls-key',
  proxyProtocolFrom: '--proxy-protocol-from',
  software: '--software',
  rateLimit: '--rate-limit/--rate-burst',
  logLevel: '--log-level',
  realm: '--realm',
  users: '--user',
  usersFile: '--users-file',
  authSecrets: '--auth-secret',
  relayIps: '--relay-ip',
  minPort: '--min-port',
  maxPort: '--max-port',
  allowPeers: '--allow-peer',
  denyPeers: '--deny-peer',
  userQuota: '--user-quota',
  totalQuota: '--total-quota',
  sourceQuota: '--source-quota',
  tcpConnectsPerAllocation: '--tcp-connects',
  tcpIncomingPerAllocation: '--tcp-incoming',
  bandwidth: '--bandwidth',
  strictChannelRange: '--strict-channel-range',
  alternateServer: '--alternate-server',
  rendezvousPort: '--rendezvous-port',
  rendezvousHost: '--rendezvous-host',
  rendezvousIceUrls: '--rendezvous-ice-url',
  exposePorts: '--expose-ports',
  exposePublicIp: '--expose-public-ip',
  exposePeerKeys: '--expose-allow-key',
  exposeOutbound: '--expose-outbound',
  rendezvousPeerKeys: '--rendezvous-allow-key',
  rendezvousTokens: '--rendezvous-token',
  rendezvousConnectionsPerSource: '--rendezvous-connections-per-source',
  rendezvousMaxConnections: '--rendezvous-max-connections',
  rendezvousNamesPerKey: '--rendezvous-names-per-key',
  rendezvousNameTtlDays: '--rendezvous-name-ttl-days',
  anonymousRelayPerPeer: '--anonymous-relay-per-peer',
  anonymousRelayTotal: '--anonymous-relay-total',
  anonymousRelayBandwidth: '--anonymous-relay-bandwidth',
  adminPort: '--admin-port',
  adminListen: '--admin-listen',
  adminTokenFile: '--admin-token-file',
  redis: '--redis',
  nodeId: '--node-id',
  redisUserdb: '--redis-userdb',
  redisUserdbCacheTtl: '--redis-userdb-cache-ttl',
  quotaLease: '--quota-lease',
  alternateOver: '--alternate-over',
};

/** `the string "x"`, `the number 5`, `the list ["a", "b"]`, `a list of 5 items`, `a mapping (keys a, b)`. */
export function describeValue(v: unknown): string {
  if (v === null) return 'null';
  if (v === undefined) return 'nothing';
  if (typeof v === 'string') return `the string ${JSON.stringify(v.length > 80 ? `${v.slice(0, 77)}...` : v)}`;
  if (typeof v === 'number' || typeof v === 'boolean') return `the ${typeof v} ${String(v)}`;
  if (Array.isArray(v)) {
    const simple = v.every((x) => ['string', 'number', 'boolean'].includes(typeof x));
    const text = simple ? JSON.stringify(v) : '';
    return simple && text.length <= 100 ? `the list ${text.replace(/","/g, '", "')}` : `a list of ${v.length} item${v.length === 1 ? '' : 's'}`;
  }
  if (typeof v === 'object') return `a mapping (keys ${Object.keys(v).join(', ') || 'none'})`;
  return `a ${typeof v}`;
}

/** Closest known key when `key` looks like a misspelling of one (case or up to 2 edits). */
function closestKey(key: string, known: readonly string[]): string | undefined {
  const distance = (a: string, b: string): number => {
    const row = Array.from({ length: b.length + 1 }, (_, i) => i);
    for (let i = 1; i <= a.length; i++) {
      let prev = row[0]!;
      row[0] = i;
      for (let j = 1; j <= b.length; j++) {
        const here = row[j]!;
        row[j] = Math.min(row[j]! + 1, row[j - 1]! + 1, prev + (a[i - 1] === b[j - 1] ? 0 : 1));
        prev = here;
      }
    }
    return row[b.length]!;
  };
  let best: { key: string; d: number } | undefined;
  for (const k of known) {
    const d = k.toLowerCase() === key.toLowerCase() ? 0 : distance(key, k);
    if (d <= 2 && (best === undefined || d < best.d)) best = { key: k, d };
  }
  return best?.key;
}

const valueAt = (root: unknown, path: readonly PropertyKey[]): unknown =>
  path.reduce<unknown>((v, k) => (v !== null && typeof v === 'object' ? (v as Record<PropertyKey, unknown>)[k] : undefined), root);

/** Issue codes whose message we wrote ourselves (refinements, regex messages); zod's own messages are not shown. */
const OWN_MESSAGE = new Set(['custom', 'invalid_format']);

export interface ConfigErrorContext {
  /** The merged input that failed (file keys overridden by flags). */
  readonly input: Record<string, unknown>;
  /** Keys whose value came from a flag (named by their flag in the message). */
  readonly fromFlags: ReadonlySet<string>;
  /** Each key's description of what it expects (`key -> words`). */
  readonly expected: (key: string) => string | undefined;
  /** The keys the configuration knows, for "did you mean". */
  readonly knownKeys: readonly string[];
}

/** One sentence per problem (duplicates removed), each naming its key. */
export function configErrorSentences(error: z.ZodError, ctx: ConfigErrorContext): string[] {
  const out = new Set<string>();
  for (const issue of error.issues) {
    if (issue.code === 'unrecognized_keys') {
      for (const k of issue.keys) {
        const near = closestKey(k, ctx.knownKeys);
        out.add(`unknown config key "${k}"${near ? ` (did you mean "${near}"?)` : ''}; nat-server --help lists the keys`);
      }
      continue;
    }
    const key = issue.path[0];
    if (typeof key !== 'string') {
      out.add(`the configuration must be a mapping of keys (${issue.message})`);
      continue;
    }
    const label = ctx.fromFlags.has(key) && FLAG_OF_KEY[key] ? FLAG_OF_KEY[key] : `config key "${key}"`;
    const value = ctx.input[key];
    const own = OWN_MESSAGE.has(issue.code) ? issue.message : undefined;
    if (own !== undefined && !own.startsWith('not ')) {
      // A refinement across keys (value problems are worded "not ..."): its message says what to do.
      out.add(value === undefined ? own : `${label}: ${own}`);
      continue;
    }
    const expected = ctx.expected(key);
    const item = issue.path[1];
    // One flag value (or a one-item list) is shown as that value.
    const single = item === 0 && Array.isArray(value) && value.length === 1;
    // A Redis URL may hold a password: never echoed back.
    const got = key === 'redis' ? 'a value not shown here (a Redis URL may hold a password)' : describeValue(single ? value[0] : value);
    let sentence = `${label}: ${expected ? `expected ${expected}, got ${got}` : (own ?? issue.message)}`;
    if (single) sentence += own !== undefined ? ` (${own})` : '';
    else if (typeof item === 'number' && Array.isArray(value))
      sentence += ` (item ${item + 1}, ${JSON.stringify(value[item]) ?? 'nothing'}${own ? `, is ${own}` : ''})`;
    else if (issue.path.length > 1 && typeof item !== 'number') sentence += ` (at ${issue.path.join('.')}: ${describeValue(valueAt(ctx.input, issue.path))})`;
    else if (own !== undefined && expected !== undefined) sentence += ` (${own})`;
    out.add(sentence);
  }
  return [...out];
}
