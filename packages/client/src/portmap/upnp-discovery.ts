/**
 * UPnP IGD discovery: SSDP M-SEARCH on the LAN, the device description fetched from the
 * gateway only, and the one bounded HTTP/1.1 exchange the SOAP client uses too.
 */
import { createSocket, type Socket } from 'node:dgram';
import { request as httpRequest } from 'node:http';
import { IGD_SEARCH_TARGETS, SSDP_MULTICAST_V4, decodeSsdpResponse, encodeMSearch } from '@nat/protocol';
import { PortMapError } from './errors.js';
import { assertOnGateway, ipv4Interfaces } from './gateway.js';
import {
  UPNP_MAX_DOCUMENT,
  WAN_IPV6_FIREWALL_SERVICE,
  parseDeviceDescription,
  wanConnectionService,
  type DeviceDescription,
  type UpnpService,
} from './soap.js';

/** Options of {@link discoverIgd}. */
export interface IgdDiscoveryOptions {
  /**
   * The router: also search by unicast at this address (a router that ignores multicast still
   * answers), and use only devices whose description and control URLs are on this address
   * (others are refused with NOT_GATEWAY). Without it, control URLs must be on the host of
   * the description's URL.
   */
  readonly gateway?: string;
  /** How long to collect answers, ms (default 2000). */
  readonly timeoutMs?: number;
  /** The UDP port of the unicast search at `gateway` (default 1900, the SSDP port). */
  readonly ssdpPort?: number;
  /** Search by multicast too (default true); false searches only by unicast at `gateway`. */
  readonly multicast?: boolean;
  /** Local IPv4 addresses to search from (default: every non-internal interface). */
  readonly interfaces?: readonly string[];
  readonly signal?: AbortSignal;
}

/** An Internet Gateway Device found by SSDP, with its WAN connection service. */
export interface IgdDevice {
  readonly location: string;
  readonly description: DeviceDescription;
  readonly service: UpnpService;
  /** The IPv6 firewall control service, where offered (IGD v2). */
  readonly firewall: UpnpService | undefined;
  /** The local address the description was fetched from (this host's address on that LAN). */
  readonly localAddress: string;
}

/** Result of an HTTP exchange with a device. */
export interface HttpResult {
  readonly status: number;
  readonly body: string;
  readonly localAddress: string;
}

/** One bounded HTTP/1.1 request (no redirects, body capped at {@link UPNP_MAX_DOCUMENT}). */
export function http(
  url: string,
  o: { method: 'GET' | 'POST'; headers?: Record<string, string>; body?: string; timeoutMs: number; signal?: AbortSignal },
): Promise<HttpResult> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(
      url,
      { method: o.method, headers: { Connection: 'close', ...o.headers }, timeout: o.timeoutMs, ...(o.signal ? { signal: o.signal } : {}) },
      (res) => {
        const chunks: Buffer[] = [];
        let size = 0;
        res.on('data', (c: Buffer) => {
          size += c.length;
          if (size > UPNP_MAX_DOCUMENT) {
            req.destroy();
            reject(new PortMapError('BAD_RESPONSE', `${url}: answer larger than ${UPNP_MAX_DOCUMENT} bytes`));
            return;
          }
          chunks.push(c);
        });
        res.on('end', () =>
          resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8'), localAddress: req.socket?.localAddress ?? '' }),
        );
        res.on('error', (e) => reject(new PortMapError('SOCKET', `${url}: ${e.message}`, { cause: e })));
      },
    );
    req.on('timeout', () => req.destroy(new PortMapError('TIMEOUT', `${url}: no answer in ${o.timeoutMs} ms`)));
    req.on('error', (e) => {
      if (e instanceof PortMapError) reject(e);
      else if (o.signal?.aborted) reject(new PortMapError('ABORTED', `${url}: aborted`, { cause: o.signal.reason }));
      else reject(new PortMapError('SOCKET', `${url}: ${e.message}`, { cause: e }));
    });
    req.end(o.body);
  });
}

/**
 * Searches for Internet Gateway Devices with SSDP M-SEARCH (IGD v1 and v2 targets) from every
 * IPv4 interface (and by unicast to `gateway`), fetches each answering device's description and
 * returns those with a WAN connection service, the one at `gateway` first.
 */
export async function discoverIgd(options: IgdDiscoveryOptions = {}): Promise<IgdDevice[]> {
  const timeoutMs = options.timeoutMs ?? 2000;
  const ssdpPort = options.ssdpPort ?? 1900;
  const locations = new Set<string>();
  const sockets: Socket[] = [];
  const sources = options.interfaces ?? ipv4Interfaces().map((i) => i.address);
  const mx = Math.max(1, Math.min(5, Math.floor(timeoutMs / 1000)));
  await Promise.all(
    sources.map(
      (address) =>
        new Promise<void>((resolve) => {
          const s = createSocket({ type: 'udp4' });
          sockets.push(s);
          s.on('error', () => resolve());
          s.on('message', (msg: Buffer) => {
            try {
              locations.add(decodeSsdpResponse(new Uint8Array(msg.buffer, msg.byteOffset, msg.byteLength)).location);
            } catch {
              /* a NOTIFY, another M-SEARCH, or garbage: ignore */
            }
          });
          s.bind({ port: 0, address }, () => {
            try {
              s.setMulticastInterface(address);
              s.setMulticastTTL(2);
            } catch {
              /* unicast only */
            }
            for (const st of IGD_SEARCH_TARGETS) {
              if (options.multicast !== false) s.send(encodeMSearch(st, { mx }), SSDP_MULTICAST_V4.port, SSDP_MULTICAST_V4.address, () => {});
              if (options.gateway) s.send(encodeMSearch(st, { mx, host: `${options.gateway}:${ssdpPort}` }), ssdpPort, options.gateway, () => {});
            }
            resolve();
          });
        }),
    ),
  );
  try {
    await new Promise<void>((resolve, reject) => {
      const deadline = Date.now() + timeoutMs;
      // Stop early once a device answered and a short grace period for others passed.
      const tick = setInterval(() => {
        if (options.signal?.aborted) {
          clearInterval(tick);
          reject(new PortMapError('ABORTED', 'SSDP search aborted', { cause: options.signal.reason }));
        } else if (
          Date.now() >= deadline ||
          // The gateway itself answered: no need to wait for others.
          (options.gateway !== undefined && [...locations].some((l) => new URL(l).hostname === options.gateway)) ||
          (locations.size > 0 && Date.now() >= deadline - timeoutMs / 2)
        ) {
          clearInterval(tick);
          resolve();
        }
      }, 50);
    });
  } finally {
    for (const s of sockets) {
      try {
        s.close();
      } catch {
        /* closed */
      }
    }
  }
  const devices: IgdDevice[] = [];
  const refused: PortMapError[] = [];
  await Promise.all(
    [...locations].slice(0, 8).map(async (location) => {
      try {
        const device = await fetchDevice(location, options);
        if (device !== undefined) devices.push(device);
      } catch (e) {
        if (e instanceof PortMapError && e.code === 'NOT_GATEWAY') refused.push(e);
        /* else a device we cannot use */
      }
    }),
  );
  // only devices off the gateway answered: say so, rather than "no device"
  if (devices.length === 0 && refused[0] !== undefined) throw refused[0];
  const atGateway = (d: IgdDevice): boolean => options.gateway !== undefined && new URL(d.location).hostname === options.gateway;
  return devices.sort((a, b) => Number(atGateway(b)) - Number(atGateway(a)));
}

/** The device at an SSDP LOCATION, pinned to the gateway; undefined when it has no WAN connection service. */
async function fetchDevice(location: string, options: IgdDiscoveryOptions): Promise<IgdDevice | undefined> {
  const gateway = options.gateway ?? new URL(location).hostname;
  assertOnGateway(location, gateway, 'description URL (SSDP LOCATION)');
  const r = await http(location, { method: 'GET', timeoutMs: 3000, ...(options.signal ? { signal: options.signal } : {}) });
  if (r.status !== 200) return undefined;
  const description = parseDeviceDescription(r.body, location);
  const service = wanConnectionService(description);
  if (!service) return undefined;
  const firewall = description.services.find((s) => s.serviceType === WAN_IPV6_FIREWALL_SERVICE);
  for (const s of [service, firewall]) if (s !== undefined) assertOnGateway(s.controlURL, gateway, `control URL of ${s.serviceType}`);
  return { location, description, service, firewall, localAddress: r.localAddress };
}
