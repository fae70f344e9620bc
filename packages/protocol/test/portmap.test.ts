/**
 * NAT-PMP, PCP and SSDP codecs against packets captured from miniupnpd 2.3.1 (Debian) in the
 * lab (tcpdump on the router's LAN side; UDP payloads below), the RFCs' rules, and fuzzing.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  DecodeError,
  EncodeError,
  IGD_SEARCH_TARGETS,
  NATPMP_RESULT,
  PCP_OPTION,
  PCP_RESULT,
  decodeNatPmpResponse,
  decodePcpResponse,
  decodeSsdpResponse,
  encodeMSearch,
  encodeNatPmpExternalAddressRequest,
  encodeNatPmpMapRequest,
  encodePcpRequest,
  encodePcpResponse,
  natPmpEpochValid,
  natPmpResultName,
  pcpEpochValid,
  pcpIsShortLifetimeError,
  pcpResultName,
  type PcpResponse,
} from '../src/index.js';

const hex = (s: string): Uint8Array => Uint8Array.from(Buffer.from(s.replace(/\s+/g, ''), 'hex'));
const toHex = (b: Uint8Array): string => Buffer.from(b).toString('hex');
const runs = Number(process.env.FUZZ_RUNS ?? 3000);

// Captured: natpmpc -g 198.18.0.1 -a 4000 4000 udp 60 against miniupnpd (external 203.0.113.254).
const NATPMP = {
  externalRequest: '0000',
  externalResponse: '0080 0000 00000008 cb0071fe',
  mapRequest: '0001 0000 0fa0 0fa0 0000003c',
  mapResponse: '0081 0000 00000008 0fa0 0fa0 0000003c',
};

// Captured: our PcpClient mapping UDP 4000 for 60 s, then deleting it, client 198.18.0.2.
const NONCE = '1669607a9110a32124d88384';
const PCP = {
  mapRequest: `0201 0000 0000003c 00000000000000000000ffff c6120002 ${NONCE} 11000000 0fa0 0fa0 00000000000000000000ffff 00000000`,
  mapResponse: `0281 0000 0000003c 00000198 000000000000000000000000 ${NONCE} 11000000 0fa0 0fa0 00000000000000000000ffff cb0071fe`,
  deleteRequest: `0201 0000 00000000 00000000000000000000ffff c6120002 ${NONCE} 11000000 0fa0 0000 00000000000000000000ffff 00000000`,
  deleteResponse: `0281 0000 00000000 00000198 000000000000000000000000 ${NONCE} 11000000 0fa0 0000 00000000000000000000ffff cb0071fe`,
};

describe('NAT-PMP (RFC 6886)', () => {
  it('encodes the requests byte for byte as natpmpc does', () => {
    expect(toHex(encodeNatPmpExternalAddressRequest())).toBe(NATPMP.externalRequest);
    expect(toHex(encodeNatPmpMapRequest({ protocol: 'udp', internalPort: 4000, suggestedExternalPort: 4000, lifetime: 60 }))).toBe(
      NATPMP.mapRequest.replace(/\s/g, ''),
    );
    // TCP is opcode 2; deletion is lifetime 0 and suggested port 0 (section 3.4).
    expect(toHex(encodeNatPmpMapRequest({ protocol: 'tcp', internalPort: 15441, suggestedExternalPort: 0, lifetime: 0 }))).toBe(
      '000200003c5100000000' + '0000',
    );
  });

  it("decodes miniupnpd's answers", () => {
    expect(decodeNatPmpResponse(hex(NATPMP.externalResponse))).toEqual({ op: 'external-address', resultCode: 0, epoch: 8, externalAddress: '203.0.113.254' });
    expect(decodeNatPmpResponse(hex(NATPMP.mapResponse))).toEqual({
      op: 'map',
      protocol: 'udp',
      resultCode: 0,
      epoch: 8,
      internalPort: 4000,
      externalPort: 4000,
      lifetime: 60,
    });
  });

  it('decodes error answers, which may stop after the header (section 3.5)', () => {
    expect(decodeNatPmpResponse(hex('0082 0002 00000010'))).toMatchObject({ op: 'map', protocol: 'tcp', resultCode: NATPMP_RESULT.NOT_AUTHORIZED, epoch: 16 });
    expect(decodeNatPmpResponse(hex('0080 0001'))).toMatchObject({ op: 'external-address', resultCode: 1, externalAddress: undefined });
    expect(natPmpResultName(2)).toBe('Not Authorized/Refused');
  });

  it('rejects what is not a response with a DecodeError', () => {
    for (const bad of [
      '',
      '00',
      '0000',
      '0001',
      '0180 0000 00000008 cb0071fe',
      '0080 0000 0000',
      '0081 0000 00000008 0fa0',
      '0083 0000 00000008 00000000 00000000',
    ]) {
      expect(() => decodeNatPmpResponse(hex(bad)), bad).toThrow(DecodeError);
    }
  });

  it('refuses to encode out-of-range values', () => {
    expect(() => encodeNatPmpMapRequest({ protocol: 'udp', internalPort: 0, suggestedExternalPort: 0, lifetime: 60 })).toThrow(EncodeError);
    expect(() => encodeNatPmpMapRequest({ protocol: 'udp', internalPort: 70000, suggestedExternalPort: 0, lifetime: 60 })).toThrow(EncodeError);
    expect(() => encodeNatPmpMapRequest({ protocol: 'udp', internalPort: 1, suggestedExternalPort: 0, lifetime: 2 ** 32 })).toThrow(EncodeError);
  });

  it('epoch check (section 3.6): backwards, or far slower than the client clock, means the gateway lost its state', () => {
    const prev = { epoch: 1000, clientTime: 50 };
    expect(natPmpEpochValid(prev, { epoch: 1100, clientTime: 150 })).toBe(true);
    // 7/8 of 100 s minus 2 s slack = 85.5 s: a gateway clock running 12% slow is fine.
    expect(natPmpEpochValid(prev, { epoch: 1086, clientTime: 150 })).toBe(true);
    expect(natPmpEpochValid(prev, { epoch: 1085, clientTime: 150 })).toBe(false);
    expect(natPmpEpochValid(prev, { epoch: 3, clientTime: 51 })).toBe(false);
  });
});

describe('PCP (RFC 6887)', () => {
  const nonce = hex(NONCE);
  it('encodes MAP requests byte for byte as captured (IPv4 as ::ffff:a.b.c.d, all-zeros suggested address)', () => {
    const map = encodePcpRequest({
      opcode: 'map',
      clientAddress: '198.18.0.2',
      lifetime: 60,
      nonce,
      protocol: 'udp',
      internalPort: 4000,
      suggestedExternalPort: 4000,
    });
    expect(toHex(map)).toBe(PCP.mapRequest.replace(/\s/g, ''));
    const del = encodePcpRequest({
      opcode: 'map',
      clientAddress: '198.18.0.2',
      lifetime: 0,
      nonce,
      protocol: 'udp',
      internalPort: 4000,
      suggestedExternalPort: 0,
    });
    expect(toHex(del)).toBe(PCP.deleteRequest.replace(/\s/g, ''));
  });

  it("decodes miniupnpd's MAP answers", () => {
    const r = decodePcpResponse(hex(PCP.mapResponse));
    expect(r).toMatchObject({
      opcode: 'map',
      resultCode: 0,
      lifetime: 60,
      epoch: 408,
      protocol: 'udp',
      internalPort: 4000,
      assignedExternalPort: 4000,
      assignedExternalAddress: '203.0.113.254',
      options: [],
    });
    expect(toHex((r as { nonce: Uint8Array }).nonce)).toBe(NONCE);
    expect(decodePcpResponse(hex(PCP.deleteResponse))).toMatchObject({ opcode: 'map', lifetime: 0, assignedExternalPort: 0 });
  });

  it('PEER requests carry the remote peer (section 12.1); options are 4-byte aligned (section 7.3)', () => {
    const peer = encodePcpRequest({
      opcode: 'peer',
      clientAddress: '198.18.0.2',
      lifetime: 120,
      nonce,
      protocol: 'tcp',
      internalPort: 15441,
      suggestedExternalPort: 15441,
      remotePeerPort: 3478,
      remotePeerAddress: '203.0.113.1',
    });
    expect(peer.length).toBe(80);
    expect(peer[1]).toBe(2);
    expect(toHex(peer.subarray(60, 80))).toBe('0d960000' + '00000000000000000000ffffcb007101');
    const withOptions = encodePcpRequest({
      opcode: 'map',
      clientAddress: '198.18.0.2',
      lifetime: 60,
      nonce,
      protocol: 'udp',
      internalPort: 4000,
      suggestedExternalPort: 4000,
      preferFailure: true,
      filters: [{ prefixLength: 32, remotePeerPort: 0, remotePeerAddress: '203.0.113.1' }],
    });
    expect(withOptions.length).toBe(60 + 4 + 24);
    expect(toHex(withOptions.subarray(60, 64))).toBe('02000000');
    // FILTER: prefix length of an IPv4 peer counts the 96 bits of the ::ffff: prefix.
    expect(toHex(withOptions.subarray(64, 72))).toBe('03000014' + '00800000');
    // A response with the same options decodes them back.
    const echoed = encodePcpResponse({
      opcode: 'map',
      resultCode: 0,
      lifetime: 60,
      epoch: 1,
      nonce,
      protocol: 'udp',
      internalPort: 4000,
      assignedExternalPort: 4000,
      assignedExternalAddress: '203.0.113.254',
      options: [
        { code: PCP_OPTION.PREFER_FAILURE, data: new Uint8Array(0) },
        { code: PCP_OPTION.FILTER, data: withOptions.slice(68, 88) },
      ],
    });
    const back = decodePcpResponse(echoed);
    expect(back).toMatchObject({ options: [{ code: 2 }, { code: 3 }] });
  });

  it('never encodes THIRD_PARTY, and refuses protocol "all" with a port', () => {
    const map = encodePcpRequest({
      opcode: 'map',
      clientAddress: '198.18.0.2',
      lifetime: 60,
      nonce,
      protocol: 'udp',
      internalPort: 4000,
      suggestedExternalPort: 0,
      preferFailure: true,
    });
    for (let o = 60; o < map.length; o += 4) expect(map[o]).not.toBe(PCP_OPTION.THIRD_PARTY);
    expect(() =>
      encodePcpRequest({ opcode: 'map', clientAddress: '198.18.0.2', lifetime: 60, nonce, protocol: 'all', internalPort: 1, suggestedExternalPort: 0 }),
    ).toThrow(EncodeError);
    expect(() =>
      encodePcpRequest({
        opcode: 'map',
        clientAddress: '198.18.0.2',
        lifetime: 60,
        nonce: new Uint8Array(8),
        protocol: 'udp',
        internalPort: 1,
        suggestedExternalPort: 0,
      }),
    ).toThrow(EncodeError);
  });

  it('recognizes a NAT-PMP-only server answering a PCP request (section 9)', () => {
    expect(decodePcpResponse(hex('0081 0001 00000008'))).toEqual({ opcode: 'unsupported-version', serverVersion: 0, resultCode: 1 });
  });

  it('error responses: header-only allowed, names and short/long lifetime classes', () => {
    expect(decodePcpResponse(hex('0281 0003 00000000 00000010 000000000000000000000000'))).toMatchObject({
      opcode: 'map',
      resultCode: PCP_RESULT.MALFORMED_REQUEST,
      epoch: 16,
    });
    expect(pcpResultName(8)).toBe('NO_RESOURCES');
    expect(pcpIsShortLifetimeError(PCP_RESULT.NO_RESOURCES)).toBe(true);
    expect(pcpIsShortLifetimeError(PCP_RESULT.NOT_AUTHORIZED)).toBe(false);
  });

  it('rejects malformed responses with a DecodeError', () => {
    const ok = hex(PCP.mapResponse);
    const cases: Uint8Array[] = [
      new Uint8Array(0),
      ok.subarray(0, 23),
      ok.subarray(0, 59), // not a multiple of 4
      ok.subarray(0, 56), // MAP body cut short, success
      Uint8Array.from([...ok.subarray(0, 1), 0x01, ...ok.subarray(2)]), // R bit clear
      Uint8Array.from([...ok.subarray(0, 1), 0x85, ...ok.subarray(2)]), // unknown opcode
      Uint8Array.from([...ok, 0x02, 0x00, 0x00, 0x08]), // option longer than the message
      new Uint8Array(1104).fill(0).map((_, i) => (i === 0 ? 2 : i === 1 ? 0x80 : 0)), // over 1100 bytes
    ];
    for (const c of cases) expect(() => decodePcpResponse(c)).toThrow(DecodeError);
  });

  it('epoch check (section 8.5)', () => {
    const prev = { epoch: 1000, clientTime: 0 };
    expect(pcpEpochValid(prev, { epoch: 1100, clientTime: 100 })).toBe(true);
    expect(pcpEpochValid(prev, { epoch: 999, clientTime: 1 })).toBe(true); // one second back is tolerated
    expect(pcpEpochValid(prev, { epoch: 5, clientTime: 100 })).toBe(false); // went back: rebooted
    expect(pcpEpochValid(prev, { epoch: 1050, clientTime: 100 })).toBe(false); // server clock far behind
    expect(pcpEpochValid(prev, { epoch: 1200, clientTime: 100 })).toBe(false); // server clock far ahead
  });
});

describe('SSDP search', () => {
  // Captured: miniupnpd's answer to a unicast M-SEARCH for InternetGatewayDevice:1.
  const answer =
    'HTTP/1.1 200 OK\r\nCACHE-CONTROL: max-age=120\r\nST: urn:schemas-upnp-org:device:InternetGatewayDevice:1\r\n' +
    'USN: uuid:3a5a0cb4-6b6d-4f7c-9d5e-1d2c3b4a5f60::urn:schemas-upnp-org:device:InternetGatewayDevice:1\r\nEXT:\r\n' +
    'SERVER: Debian/6.18.44-fc-v782 UPnP/1.1 MiniUPnPd/2.3.1\r\nLOCATION: http://198.18.0.1:5555/rootDesc.xml\r\nOPT: "http://schemas.upnp.org/upnp/1/0/"; ns=01\r\n' +
    '01-NLS: 1795613506\r\nBOOTID.UPNP.ORG: 1795613506\r\nCONFIGID.UPNP.ORG: 1337\r\n\r\n';

  it('encodes M-SEARCH', () => {
    expect(Buffer.from(encodeMSearch(IGD_SEARCH_TARGETS[0], { mx: 2 })).toString()).toBe(
      'M-SEARCH * HTTP/1.1\r\nHOST: 239.255.255.250:1900\r\nMAN: "ssdp:discover"\r\nMX: 2\r\nST: urn:schemas-upnp-org:device:InternetGatewayDevice:1\r\n\r\n',
    );
    expect(() => encodeMSearch('x\r\nEVIL: 1')).toThrow(EncodeError);
    expect(() => encodeMSearch('x', { mx: 9 })).toThrow(EncodeError);
  });

  it('decodes an answer', () => {
    const r = decodeSsdpResponse(new TextEncoder().encode(answer));
    expect(r.location).toBe('http://198.18.0.1:5555/rootDesc.xml');
    expect(r.st).toBe(IGD_SEARCH_TARGETS[0]);
    expect(r.server).toContain('MiniUPnPd');
    expect(r.headers.get('bootid.upnp.org')).toBe('1795613506');
  });

  it('rejects NOTIFY, M-SEARCH, errors, missing LOCATION and non-http locations', () => {
    const enc = (s: string): Uint8Array => new TextEncoder().encode(s);
    for (const bad of [
      'NOTIFY * HTTP/1.1\r\nHOST: 239.255.255.250:1900\r\n\r\n',
      Buffer.from(encodeMSearch(IGD_SEARCH_TARGETS[0])).toString(),
      'HTTP/1.1 404 Not Found\r\n\r\n',
      answer.replace(/LOCATION:[^\r]*\r\n/, ''),
      answer.replace('http://198.18.0.1:5555/rootDesc.xml', 'file:///etc/passwd'),
      answer.replace('http://198.18.0.1:5555/rootDesc.xml', 'not a url'),
      'HTTP/1.1 200 OK\r\nbroken header line\r\n\r\n',
    ]) {
      expect(() => decodeSsdpResponse(enc(bad)), bad.slice(0, 40)).toThrow(DecodeError);
    }
    expect(() => decodeSsdpResponse(new Uint8Array(9000))).toThrow(DecodeError);
  });

  it('fuzz: random and mutated answers decode or throw DecodeError only', () => {
    const valid = new TextEncoder().encode(answer);
    const check = (b: Uint8Array): void => {
      try {
        decodeSsdpResponse(b);
      } catch (e) {
        if (!(e instanceof DecodeError)) throw e;
      }
    };
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 600 }), (b) => check(b)),
      { numRuns: runs },
    );
    fc.assert(
      fc.property(fc.string({ maxLength: 400 }), (s) => check(new TextEncoder().encode(`HTTP/1.1 200 OK\r\n${s}\r\n\r\n`))),
      { numRuns: runs },
    );
    fc.assert(
      fc.property(fc.array(fc.tuple(fc.nat(valid.length - 1), fc.integer({ min: 0, max: 255 })), { maxLength: 8 }), (edits) => {
        const b = valid.slice();
        for (const [i, v] of edits) b[i] = v;
        check(b);
      }),
      { numRuns: runs },
    );
  });
});

describe('PCP round trips', () => {
  const port = fc.integer({ min: 1, max: 65535 });
  const ipv4 = fc.tuple(fc.nat(255), fc.nat(255), fc.nat(255), fc.nat(255)).map((a) => a.join('.'));
  it('every MAP/PEER response the encoder makes decodes to the same fields', () => {
    fc.assert(
      fc.property(
        fc.constantFrom('map' as const, 'peer' as const),
        fc.nat(255),
        fc.nat(0xffffffff),
        fc.nat(0xffffffff),
        fc.uint8Array({ minLength: 12, maxLength: 12 }),
        fc.constantFrom('udp' as const, 'tcp' as const),
        port,
        port,
        ipv4,
        fc.array(fc.record({ code: fc.integer({ min: 2, max: 255 }), data: fc.uint8Array({ maxLength: 40 }) }), { maxLength: 4 }),
        (opcode, resultCode, lifetime, epoch, nonce, protocol, internalPort, assignedExternalPort, assignedExternalAddress, options) => {
          const r = decodePcpResponse(
            encodePcpResponse({
              opcode,
              resultCode,
              lifetime,
              epoch,
              nonce,
              protocol,
              internalPort,
              assignedExternalPort,
              assignedExternalAddress,
              remotePeerPort: 1,
              remotePeerAddress: '203.0.113.1',
              options,
            }),
          );
          expect(r).toMatchObject({ opcode, resultCode, lifetime, epoch, protocol, internalPort, assignedExternalPort, assignedExternalAddress });
          expect((r as PcpResponse).options.map((o) => [o.code, [...o.data]])).toEqual(options.map((o) => [o.code, [...o.data]]));
        },
      ),
      { numRuns: Math.min(runs, 1000) },
    );
  });
});

describe('NAT-PMP and PCP decoders under hostile input', () => {
  const decodeOrDecodeError =
    (f: (b: Uint8Array) => unknown) =>
    (b: Uint8Array): void => {
      try {
        f(b);
      } catch (e) {
        if (!(e instanceof DecodeError)) throw e;
      }
    };
  it('random bytes', () => {
    fc.assert(fc.property(fc.uint8Array({ maxLength: 1200 }), decodeOrDecodeError(decodeNatPmpResponse)), { numRuns: runs });
    fc.assert(fc.property(fc.uint8Array({ maxLength: 1200 }), decodeOrDecodeError(decodePcpResponse)), { numRuns: runs });
  });
  it('mutated captured packets (first bytes fixed so most reach the body parsers)', () => {
    for (const [seed, f] of [
      [hex(NATPMP.mapResponse), decodeNatPmpResponse],
      [hex(NATPMP.externalResponse), decodeNatPmpResponse],
      [hex(PCP.mapResponse), decodePcpResponse],
      [
        encodePcpResponse({
          opcode: 'peer',
          resultCode: 0,
          lifetime: 1,
          epoch: 1,
          nonce: new Uint8Array(12),
          options: [{ code: 3, data: new Uint8Array(20) }],
        }),
        decodePcpResponse,
      ],
    ] as const) {
      fc.assert(
        fc.property(
          fc.array(fc.tuple(fc.nat(seed.length + 7), fc.integer({ min: 0, max: 255 })), { maxLength: 6 }),
          fc.integer({ min: -8, max: 8 }),
          (edits, grow) => {
            const b = new Uint8Array(Math.max(0, seed.length + grow));
            b.set(seed.subarray(0, b.length));
            for (const [i, v] of edits) if (i >= 2 && i < b.length) b[i] = v;
            decodeOrDecodeError(f)(b);
          },
        ),
        { numRuns: runs },
      );
    }
  });
});
