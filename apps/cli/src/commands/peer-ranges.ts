/**
 * The ranges a nat-server relay refuses as peers unless its operator allows them
 * (`nat-server --allow-peer CIDR`): the relay's own default ranges (@nat/protocol's
 * `PeerRanges`, which nat-server's peer policy is made of), asked here so that the CLI's hints
 * name exactly the range the server refused.
 */
import { PeerRanges } from '@nat/protocol';

const defaults = new PeerRanges();
const KIND: Readonly<Record<string, string>> = {
  '127.0.0.0/8': 'loopback',
  '::1/128': 'loopback',
  '10.0.0.0/8': 'private',
  '172.16.0.0/12': 'private',
  '192.168.0.0/16': 'private',
  'fc00::/7': 'private',
  '100.64.0.0/10': 'carrier-grade NAT',
  '169.254.0.0/16': 'link-local',
  'fe80::/10': 'link-local',
};

/** The default-denied range `ip` is in (the one to name in `--allow-peer`), if any. */
export function deniedRange(ip: string): { readonly cidr: string; readonly what: string } | undefined {
  const verdict = defaults.check(ip);
  if (verdict.allowed || verdict.rule === 'not an IP address') return undefined;
  return { cidr: verdict.rule, what: KIND[verdict.rule] ?? 'reserved' };
}
