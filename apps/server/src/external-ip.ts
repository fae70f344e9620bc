/**
 * `--external-ip PUBLIC[/PRIVATE]` (config key `externalIps`), as coturn's `external-ip`: on a
 * cloud VM behind a 1:1 NAT, the public address clients reach and the private address the server
 * binds. Without `/PRIVATE` it applies to the listen address (and the relay IP) of its family.
 */
import { canonicalIp, ipFamily } from '@nat/protocol';
import type { ExternalAddress } from '@nat/server';
import { z } from 'zod';

/** `PUBLIC` or `PUBLIC/PRIVATE`, both IP addresses of one family. */
export const externalIp = z.string().refine(
  (s) => {
    const [pub, priv, extra] = s.split('/');
    const f = ipFamily(pub ?? '');
    return f !== undefined && extra === undefined && (priv === undefined || ipFamily(priv) === f);
  },
  { message: 'not PUBLIC or PUBLIC/PRIVATE (two IP addresses of one family)' },
);

export const EXTERNAL_IPS_DESCRIPTION =
  'a public IP address, or PUBLIC/PRIVATE (the address clients reach / the address this server binds, of one family), or a list of them';

/** What the resolution needs of a configuration. */
interface Addresses {
  readonly listen: readonly string[];
  readonly alternate: readonly string[];
  readonly relayIps?: readonly string[] | undefined;
  readonly externalIps: readonly string[];
}

/** The canonical text of an IP, or the text itself when it is no IP (its own key reports that). */
const canonical = (ip: string): string => (ipFamily(ip) === undefined ? ip : canonicalIp(ip));

/** Why the configuration's external IPs cannot be used, or undefined when they can (or when a value is malformed: its key says so). */
export function externalIpsProblem(c: Addresses): string | undefined {
  // zod runs this refinement even when other keys failed: only well-formed addresses are compared.
  const ips = (v: unknown): v is string[] => Array.isArray(v) && v.every((x) => typeof x === 'string' && ipFamily(x) !== undefined);
  if (!ips(c.listen) || !ips(c.alternate) || !(c.relayIps === undefined || ips(c.relayIps))) return undefined;
  if (!Array.isArray(c.externalIps) || !c.externalIps.every((t) => externalIp.safeParse(t).success)) return undefined;
  const bound = new Set([...c.listen, ...c.alternate, ...(c.relayIps ?? [])].map(canonical));
  const seen = new Set<string>();
  for (const text of c.externalIps) {
    const [pub, priv] = text.split('/') as [string, string | undefined];
    const family = ipFamily(pub)!;
    if (priv === undefined && !c.listen.some((l) => ipFamily(l) === family)) {
      return `${text} has no ${family} listen address to apply to: give --listen with an ${family} address, or PUBLIC/PRIVATE`;
    }
    if (priv !== undefined && !bound.has(canonical(priv))) {
      return `${text}: ${priv} is not an address this server binds (its --listen, --alternate and --relay-ip addresses: ${[...bound].join(', ')})`;
    }
    const key = priv === undefined ? family : canonical(priv);
    if (seen.has(key)) return `${text}: ${priv ?? `the ${family} listen address`} has a public address already (one per private address)`;
    seen.add(key);
  }
  return undefined;
}

/**
 * The library's `external` list of a configuration: `PUBLIC/PRIVATE` as given; `PUBLIC` for the
 * listen address of its family and, when it differs, the relay IP of that family.
 */
export function externalOf(c: Addresses): ExternalAddress[] {
  const out: ExternalAddress[] = [];
  const add = (pub: string, priv: string | undefined): void => {
    if (priv === undefined || out.some((m) => canonical(m.private) === canonical(priv))) return;
    out.push({ public: pub, private: priv });
  };
  for (const text of c.externalIps) {
    const [pub, priv] = text.split('/') as [string, string | undefined];
    if (priv !== undefined) add(pub, priv);
  }
  for (const text of c.externalIps) {
    const [pub, priv] = text.split('/') as [string, string | undefined];
    if (priv !== undefined) continue;
    const family = ipFamily(pub);
    add(
      pub,
      c.listen.find((l) => ipFamily(l) === family),
    );
    add(
      pub,
      c.relayIps?.find((l) => ipFamily(l) === family),
    );
  }
  return out;
}

/** The public IP clients are told for `ip` (one of the server's bound addresses), or `ip` itself. */
export function advertisedIp(external: readonly ExternalAddress[], ip: string): string {
  const key = canonical(ip);
  return external.find((m) => canonical(m.private) === key)?.public ?? ip;
}
