import { readFile } from 'node:fs/promises';
import { networkInterfaces } from 'node:os';
import { ipFamily } from '@nat/protocol';
import { PortMapError } from './errors.js';

/**
 * The IPv4 default gateways of this host, from the kernel's routing table (`/proc/net/route`,
 * Linux). Empty elsewhere or when there is no default route: pass the gateway explicitly then.
 */
export async function defaultGateways(routeFile = '/proc/net/route'): Promise<string[]> {
  let text: string;
  try {
    text = await readFile(routeFile, 'utf8');
  } catch {
    return [];
  }
  const out: { gw: string; metric: number }[] = [];
  for (const line of text.split('\n').slice(1)) {
    const f = line.trim().split(/\s+/);
    // Iface Destination Gateway Flags RefCnt Use Metric Mask ...
    if (f.length < 8 || f[1] !== '00000000' || f[7] !== '00000000') continue;
    const hex = f[2]!;
    if (!/^[0-9A-Fa-f]{8}$/.test(hex) || hex === '00000000') continue;
    const n = parseInt(hex, 16); // little-endian on every Linux this runs on
    const gw = [n & 0xff, (n >>> 8) & 0xff, (n >>> 16) & 0xff, n >>> 24].join('.');
    out.push({ gw, metric: Number(f[6]) || 0 });
  }
  return [...new Set(out.sort((a, b) => a.metric - b.metric).map((x) => x.gw))];
}

/** The gateway to use: the given one (validated) or the first default gateway. */
export async function resolveGateway(gateway: string | undefined): Promise<string> {
  if (gateway !== undefined) {
    if (ipFamily(gateway) !== 'IPv4') throw new PortMapError('NO_GATEWAY', `gateway ${JSON.stringify(gateway)} is not an IPv4 address`);
    return gateway;
  }
  const [first] = await defaultGateways();
  if (first === undefined) throw new PortMapError('NO_GATEWAY', 'no IPv4 default gateway found: pass the gateway address');
  return first;
}

/**
 * Refuses (NOT_GATEWAY) a UPnP URL that is not on the gateway's address: the description
 * (an SSDP LOCATION) and every control URL must be served by the router being probed, so that
 * another host on the LAN cannot point this host's requests at a third address (its own
 * loopback, a cloud metadata address).
 */
export function assertOnGateway(url: string, gateway: string, what: string): void {
  let host: string;
  try {
    host = new URL(url).hostname.replace(/^\[(.*)\]$/, '$1');
  } catch {
    throw new PortMapError('BAD_RESPONSE', `UPnP: the ${what} ${JSON.stringify(url.slice(0, 100))} is not a URL`);
  }
  if (host !== gateway) {
    throw new PortMapError(
      'NOT_GATEWAY',
      `UPnP: the ${what} ${url.slice(0, 200)} is on ${host.slice(0, 100)}, not on the gateway ${gateway}: refused, no request sent there (the gateway is the router being probed: nat map/detect --gateway IP, or --port-map IP)`,
    );
  }
}

/** Every non-internal IPv4 address of this host, with its interface name. */
export function ipv4Interfaces(): { name: string; address: string }[] {
  const out: { name: string; address: string }[] = [];
  for (const [name, list] of Object.entries(networkInterfaces())) {
    for (const a of list ?? []) if (a.family === 'IPv4' && !a.internal) out.push({ name, address: a.address });
  }
  return out;
}
