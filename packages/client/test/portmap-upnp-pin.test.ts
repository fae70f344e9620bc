/**
 * UPnP URLs pinned to the gateway (issue 14, finding 9b): a fake Internet Gateway Device on
 * loopback (SSDP by unicast, the description over HTTP, SOAP) whose description or control URL
 * points at another host. No request may reach that host; the refusal is a NOT_GATEWAY
 * PortMapError naming both addresses.
 */
import { createSocket, type Socket } from 'node:dgram';
import { readFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import { afterEach, describe, expect, it } from 'vitest';
import { PortMapError, UpnpClient, discoverIgd, parseDeviceDescription, wanConnectionService } from '../src/index.js';

const ROOT_DESC = readFileSync(new URL('./fixtures/portmap/miniupnpd-rootDesc.xml', import.meta.url), 'utf8');
const GATEWAY = '127.0.14.1';
const OTHER = '127.0.14.2';
const CLIENT = '127.0.14.3';
const EXTERNAL_IP_RESPONSE =
  '<?xml version="1.0"?>\r\n<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body><u:GetExternalIPAddressResponse xmlns:u="urn:schemas-upnp-org:service:WANIPConnection:2"><NewExternalIPAddress>203.0.113.254</NewExternalIPAddress></u:GetExternalIPAddressResponse></s:Body></s:Envelope>\r\n';

const closers: (() => void)[] = [];
afterEach(() => {
  for (const c of closers.splice(0)) c();
});

/** An HTTP server on `host` that records every request and answers with `answer`. */
async function httpHost(host: string, answer: (req: IncomingMessage) => string): Promise<{ port: number; requests: string[] }> {
  const requests: string[] = [];
  const server: Server = createServer((req, res) => {
    requests.push(`${req.method ?? ''} ${req.url ?? ''}`);
    req.resume();
    req.on('end', () => res.end(answer(req)));
  });
  await new Promise<void>((r) => server.listen(0, host, r));
  closers.push(() => server.close());
  const address = server.address();
  if (address === null || typeof address === 'string') throw new Error('no port');
  return { port: address.port, requests };
}

/** An SSDP responder on the gateway's address: answers every M-SEARCH with `location`. */
async function ssdpHost(location: () => string): Promise<number> {
  const s: Socket = createSocket('udp4');
  s.on('message', (_m, from) => {
    const answer = `HTTP/1.1 200 OK\r\nCACHE-CONTROL: max-age=120\r\nST: urn:schemas-upnp-org:device:InternetGatewayDevice:2\r\nUSN: uuid:3a5a0cb4::urn:schemas-upnp-org:device:InternetGatewayDevice:2\r\nEXT:\r\nSERVER: fake UPnP/1.1\r\nLOCATION: ${location()}\r\n\r\n`;
    s.send(answer, from.port, from.address);
  });
  await new Promise<void>((r) => s.bind(0, GATEWAY, r));
  closers.push(() => s.close());
  return s.address().port;
}

const search = (ssdpPort: number) => discoverIgd({ gateway: GATEWAY, ssdpPort, multicast: false, interfaces: [CLIENT], timeoutMs: 1500 });

async function rejection(p: Promise<unknown>): Promise<PortMapError> {
  try {
    await p;
  } catch (e) {
    expect(e).toBeInstanceOf(PortMapError);
    return e as PortMapError;
  }
  throw new Error('expected a PortMapError');
}

describe('UPnP URLs pinned to the gateway', () => {
  it('uses a device whose description and control URLs are on the gateway (the fake IGD works)', async () => {
    const gw = await httpHost(GATEWAY, (req) => (req.method === 'GET' ? ROOT_DESC : EXTERNAL_IP_RESPONSE));
    const ssdp = await ssdpHost(() => `http://${GATEWAY}:${gw.port}/rootDesc.xml`);
    const [device] = await search(ssdp);
    expect(device?.service.controlURL).toBe(`http://${GATEWAY}:${gw.port}/ctl/IPConn`);
    const client = new UpnpClient({ device: device!, gateway: GATEWAY });
    expect(await client.externalAddress()).toBe('203.0.113.254');
    expect(gw.requests).toEqual(['GET /rootDesc.xml', 'POST /ctl/IPConn']);
  });

  it('finding 9b: a description whose control URL is on another host is refused, and no request reaches that host', async () => {
    const other = await httpHost(OTHER, () => EXTERNAL_IP_RESPONSE);
    const gw = await httpHost(GATEWAY, () =>
      ROOT_DESC.replace('<controlURL>/ctl/IPConn</controlURL>', `<controlURL>http://${OTHER}:${other.port}/ctl/IPConn</controlURL>`),
    );
    const ssdp = await ssdpHost(() => `http://${GATEWAY}:${gw.port}/rootDesc.xml`);
    const e = await rejection(search(ssdp));
    expect(e.code).toBe('NOT_GATEWAY');
    expect(e.message).toContain(`http://${OTHER}:${other.port}/ctl/IPConn`);
    expect(e.message).toContain(`not on the gateway ${GATEWAY}`);
    // the same through a URLBase pointing elsewhere
    const based = await httpHost(GATEWAY, () => ROOT_DESC.replace('<specVersion>', `<URLBase>http://${OTHER}:${other.port}/</URLBase><specVersion>`));
    const ssdp2 = await ssdpHost(() => `http://${GATEWAY}:${based.port}/rootDesc.xml`);
    expect((await rejection(search(ssdp2))).code).toBe('NOT_GATEWAY');
    expect(gw.requests).toEqual(['GET /rootDesc.xml']);
    expect(other.requests).toEqual([]);
  });

  it('finding 9b: an SSDP LOCATION on another host is refused before fetching it', async () => {
    const other = await httpHost(OTHER, () => ROOT_DESC);
    const ssdp = await ssdpHost(() => `http://${OTHER}:${other.port}/rootDesc.xml`);
    const e = await rejection(search(ssdp));
    expect(e.code).toBe('NOT_GATEWAY');
    expect(e.message).toContain(`description URL (SSDP LOCATION) http://${OTHER}:${other.port}/rootDesc.xml is on ${OTHER}, not on the gateway ${GATEWAY}`);
    expect(other.requests).toEqual([]);
  });

  it('finding 9b: a UPnP client never posts SOAP to a control URL off its gateway', async () => {
    const other = await httpHost(OTHER, () => EXTERNAL_IP_RESPONSE);
    const location = `http://${GATEWAY}:1/rootDesc.xml`;
    const description = parseDeviceDescription(
      ROOT_DESC.replace('<controlURL>/ctl/IPConn</controlURL>', `<controlURL>http://${OTHER}:${other.port}/ctl/IPConn</controlURL>`),
      location,
    );
    const service = wanConnectionService(description)!;
    const e = await rejection(
      (async () => {
        const client = new UpnpClient({ device: { location, description, service, firewall: undefined, localAddress: CLIENT } });
        return client.externalAddress();
      })(),
    );
    expect(e.code).toBe('NOT_GATEWAY');
    expect(e.message).toContain(`is on ${OTHER}, not on the gateway ${GATEWAY}`);
    expect(other.requests).toEqual([]);
  });
});
