/**
 * UPnP's XML (device description, SOAP) on documents captured from miniupnpd 2.3.1, hostile
 * documents (entity expansion, DOCTYPE, deep nesting, size), and fuzzing: typed errors only.
 */
import { readFileSync } from 'node:fs';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  PortMapError,
  UPNP_ERROR,
  decodeSoapResponse,
  decodeXmlText,
  encodeSoapRequest,
  natPmpSchedule,
  parseDeviceDescription,
  pcpSchedule,
  soapAction,
  wanConnectionService,
  WAN_IPV6_FIREWALL_SERVICE,
  isDoubleNat,
  EpochTracker,
} from '../src/index.js';
import { natPmpEpochValid } from '@nat/protocol';

const ROOT_DESC = readFileSync(new URL('./fixtures/portmap/miniupnpd-rootDesc.xml', import.meta.url), 'utf8');
const LOCATION = 'http://198.18.0.1:40117/rootDesc.xml';
const runs = Number(process.env.FUZZ_RUNS ?? 1000);

// Captured from miniupnpd with curl in the lab's client namespace.
const EXTERNAL_IP_RESPONSE =
  '<?xml version="1.0"?>\r\n<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/" s:encodingStyle="http://schemas.xmlsoap.org/soap/encoding/"><s:Body><u:GetExternalIPAddressResponse xmlns:u="urn:schemas-upnp-org:service:WANIPConnection:1"><NewExternalIPAddress>203.0.113.254</NewExternalIPAddress></u:GetExternalIPAddressResponse></s:Body></s:Envelope>\r\n';
const NO_SUCH_ENTRY_FAULT =
  '<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/" s:encodingStyle="http://schemas.xmlsoap.org/soap/encoding/"><s:Body><s:Fault><faultcode>s:Client</faultcode><faultstring>UPnPError</faultstring><detail><UPnPError xmlns="urn:schemas-upnp-org:control-1-0"><errorCode>714</errorCode><errorDescription>NoSuchEntryInArray</errorDescription></UPnPError></detail></s:Fault></s:Body></s:Envelope>';

const expectPortMapError = (f: () => unknown, code = 'BAD_RESPONSE'): void => {
  try {
    f();
  } catch (e) {
    expect(e).toBeInstanceOf(PortMapError);
    expect((e as PortMapError).code).toBe(code);
    return;
  }
  throw new Error('expected a PortMapError');
};

describe('device description', () => {
  it("finds miniupnpd's IGD v2 services with absolute control URLs", () => {
    const d = parseDeviceDescription(ROOT_DESC, LOCATION);
    expect(d.deviceType).toBe('urn:schemas-upnp-org:device:InternetGatewayDevice:2');
    expect(d.friendlyName).toBe('Debian router');
    expect(d.services.map((s) => s.serviceType)).toEqual([
      'urn:schemas-upnp-org:service:Layer3Forwarding:1',
      'urn:schemas-upnp-org:service:DeviceProtection:1',
      'urn:schemas-upnp-org:service:WANCommonInterfaceConfig:1',
      'urn:schemas-upnp-org:service:WANIPConnection:2',
      WAN_IPV6_FIREWALL_SERVICE,
    ]);
    expect(wanConnectionService(d)).toEqual({
      serviceType: 'urn:schemas-upnp-org:service:WANIPConnection:2',
      serviceId: 'urn:upnp-org:serviceId:WANIPConn1',
      controlURL: 'http://198.18.0.1:40117/ctl/IPConn',
    });
  });

  it('prefers WANIPConnection:2, then :1, then WANPPPConnection:1; honours URLBase', () => {
    const v1 = ROOT_DESC.replace('WANIPConnection:2', 'WANPPPConnection:1').replace('<specVersion>', '<URLBase>http://198.18.0.1:9/</URLBase><specVersion>');
    const d = parseDeviceDescription(v1, LOCATION);
    expect(wanConnectionService(d)).toMatchObject({
      serviceType: 'urn:schemas-upnp-org:service:WANPPPConnection:1',
      controlURL: 'http://198.18.0.1:9/ctl/IPConn',
    });
  });

  it('decodes the predefined entities and character references, nothing else', () => {
    const d = parseDeviceDescription(ROOT_DESC.replace('<friendlyName>Debian router', '<friendlyName>A &amp; B &#x263A; &lt;r&gt;'), LOCATION);
    expect(d.friendlyName).toBe('A & B \u263a <r>');
    expect(decodeXmlText('&unknown; &#xD800; &#1114112;')).toBe('&unknown; &#xD800; &#1114112;');
  });

  it('refuses entity expansion ("billion laughs"), external entities and any DOCTYPE', () => {
    const laughs =
      '<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">' +
      '<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">]><root><device><friendlyName>&lol3;</friendlyName></device></root>';
    expectPortMapError(() => parseDeviceDescription(laughs, LOCATION));
    const xxe = '<?xml version="1.0"?><!DOCTYPE r [<!ENTITY x SYSTEM "file:///etc/passwd">]><root><device><friendlyName>&x;</friendlyName></device></root>';
    expectPortMapError(() => parseDeviceDescription(xxe, LOCATION));
    expectPortMapError(() => decodeSoapResponse(laughs, 'GetExternalIPAddress'));
  });

  it('bounds size and nesting; malformed XML and missing elements are typed errors', () => {
    expectPortMapError(() => parseDeviceDescription(`<root>${' '.repeat(300 * 1024)}</root>`, LOCATION));
    const nest = (n: number, inner: string): string =>
      `<root><device>${'<deviceList><device>'.repeat(n)}${inner}${'</device></deviceList>'.repeat(n)}</device></root>`;
    const svc =
      '<serviceList><service><serviceType>urn:schemas-upnp-org:service:WANIPConnection:1</serviceType><controlURL>/c</controlURL></service></serviceList>';
    // Services nested deeper than any IGD are not followed; absurd nesting is the parser's typed error.
    expect(parseDeviceDescription(nest(3, svc), LOCATION).services).toHaveLength(1);
    expect(parseDeviceDescription(nest(20, svc), LOCATION).services).toEqual([]);
    expectPortMapError(() => parseDeviceDescription(nest(5000, ''), LOCATION));
    for (const bad of ['', 'not xml', '<root><device>', '<root></root>', '<other/>', '<root><device></root></device>'])
      expectPortMapError(() => parseDeviceDescription(bad, LOCATION));
    // A control URL of another scheme is dropped, not followed.
    const ftp = parseDeviceDescription(ROOT_DESC.replace('<controlURL>/ctl/IPConn</controlURL>', '<controlURL>ftp://198.18.0.1/x</controlURL>'), LOCATION);
    expect(wanConnectionService(ftp)).toBeUndefined();
  });
});

describe('SOAP', () => {
  it('encodes a request as miniupnpc does (escaped arguments, quoted SOAPAction)', () => {
    const body = encodeSoapRequest('urn:schemas-upnp-org:service:WANIPConnection:2', 'AddPortMapping', [
      ['NewRemoteHost', ''],
      ['NewExternalPort', 7000],
      ['NewPortMappingDescription', 'a<b>&"c"'],
    ]);
    expect(body).toContain(
      '<s:Body><u:AddPortMapping xmlns:u="urn:schemas-upnp-org:service:WANIPConnection:2"><NewRemoteHost></NewRemoteHost><NewExternalPort>7000</NewExternalPort>',
    );
    expect(body).toContain('<NewPortMappingDescription>a&lt;b&gt;&amp;&quot;c&quot;</NewPortMappingDescription>');
    expect(soapAction('urn:x', 'AddPortMapping')).toBe('"urn:x#AddPortMapping"');
    expectPortMapError(() => encodeSoapRequest('urn:x', 'Add Port', []));
  });

  it("decodes miniupnpd's answers and faults", () => {
    expect(decodeSoapResponse(EXTERNAL_IP_RESPONSE, 'GetExternalIPAddress')).toEqual({ NewExternalIPAddress: '203.0.113.254' });
    try {
      decodeSoapResponse(NO_SUCH_ENTRY_FAULT, 'GetSpecificPortMappingEntry');
      throw new Error('no fault');
    } catch (e) {
      expect(e).toBeInstanceOf(PortMapError);
      expect((e as PortMapError).code).toBe('REFUSED');
      expect((e as PortMapError).resultCode).toBe(UPNP_ERROR.NO_SUCH_ENTRY);
      expect((e as PortMapError).message).toContain('NoSuchEntryInArray');
    }
    expectPortMapError(() => decodeSoapResponse(EXTERNAL_IP_RESPONSE, 'AddPortMapping'));
    expect(
      decodeSoapResponse(
        EXTERNAL_IP_RESPONSE.replace(/<u:GetExternalIPAddressResponse[^]*Response>/, '<u:DeletePortMappingResponse xmlns:u="x"></u:DeletePortMappingResponse>'),
        'DeletePortMapping',
      ),
    ).toEqual({});
  });

  it('fuzz: random, truncated and mutated documents parse or throw PortMapError only', () => {
    const only = (f: () => unknown): void => {
      try {
        f();
      } catch (e) {
        if (!(e instanceof PortMapError)) throw e;
      }
    };
    fc.assert(
      fc.property(fc.string({ maxLength: 500 }), (s) => only(() => parseDeviceDescription(s, LOCATION))),
      { numRuns: runs },
    );
    fc.assert(
      fc.property(fc.string({ maxLength: 500 }), (s) => only(() => decodeSoapResponse(s, 'GetExternalIPAddress'))),
      { numRuns: runs },
    );
    fc.assert(
      fc.property(fc.nat(ROOT_DESC.length), (n) => only(() => parseDeviceDescription(ROOT_DESC.slice(0, n), LOCATION))),
      { numRuns: Math.min(runs, 500) },
    );
    const pieces = [
      '<',
      '>',
      '</',
      '&',
      ';',
      '"',
      '<!DOCTYPE',
      '<![CDATA[',
      ']]>',
      '<?',
      '?>',
      '__proto__',
      'constructor',
      '<device>',
      '</device>',
      '<service>',
    ];
    fc.assert(
      fc.property(fc.array(fc.tuple(fc.nat(ROOT_DESC.length), fc.constantFrom(...pieces)), { maxLength: 5 }), (edits) => {
        let doc = ROOT_DESC;
        for (const [i, p] of edits) doc = doc.slice(0, i) + p + doc.slice(i);
        only(() => parseDeviceDescription(doc, LOCATION));
      }),
      { numRuns: Math.min(runs, 500) },
    );
    expect(({} as Record<string, unknown>)['polluted']).toBeUndefined();
  });
});

describe('retransmission schedules and double NAT', () => {
  it('NAT-PMP: 250 ms doubling, 9 sends (RFC 6886 3.1)', () => {
    expect([...natPmpSchedule()()]).toEqual([250, 500, 1000, 2000, 4000, 8000, 16000, 32000, 64000]);
    expect([...natPmpSchedule(3)()]).toEqual([250, 500, 1000]);
  });
  it('PCP: IRT 3 s, doubling with +-10% jitter, capped at MRT 1024 s (RFC 6887 8.1.1)', () => {
    const lo = [...pcpSchedule(12, 3000, 1_024_000, () => 0)()];
    const hi = [...pcpSchedule(12, 3000, 1_024_000, () => 0.999999)()];
    expect(lo[0]).toBe(2700);
    expect(hi[0]).toBe(3300);
    for (let i = 1; i < 12; i++) {
      expect(lo[i]).toBeLessThanOrEqual(1.1 * 1_024_000);
      expect(hi[i]!).toBeGreaterThan(lo[i]!);
    }
    expect(lo.at(-1)).toBe(Math.round(0.9 * 1_024_000));
  });
  it('EpochTracker flags a reset on the first epoch that breaks the rule, not on the first one seen', () => {
    let t = 0;
    const epochs = new EpochTracker(natPmpEpochValid, () => t);
    expect(epochs.observe(500)).toBe(false);
    t = 10;
    expect(epochs.observe(510)).toBe(false);
    t = 20;
    expect(epochs.observe(2)).toBe(true); // the router restarted
    t = 30;
    expect(epochs.observe(12)).toBe(false);
  });
  it('double NAT when the router external address is not the STUN-observed one', () => {
    expect(isDoubleNat('198.18.100.2', '203.0.113.254')).toBe(true);
    expect(isDoubleNat('203.0.113.254', '203.0.113.254')).toBe(false);
    expect(isDoubleNat(undefined, '203.0.113.254')).toBeNull();
  });
});
