/**
 * Writes the valid seeds of fuzz/corpus/<target>.json from real encodings (`tsx fuzz/make-corpus.ts`).
 * Run once when a format changes; the files are committed. `crashers` already in a file (inputs
 * that found a defect) are kept.
 */
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import {
  Attr,
  MuxFlag,
  MuxType,
  StunClass,
  StunMethod,
  attr,
  encodeChannelData,
  encodeControlMessage,
  encodeMuxHeader,
  encodePcpResponse,
  encodeRfc4571,
  encodeSignallingMessage,
  encodeStunMessage,
  type ExposeControlMessage,
  type SignallingMessage,
} from '../src/index.js';

const CORPUS = new URL('./corpus/', import.meta.url);
const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex');
const cat = (...parts: Uint8Array[]): Uint8Array => Buffer.concat(parts);
const tid = new Uint8Array(12).fill(7);
const v4 = { family: 'IPv4' as const, address: '203.0.113.9', port: 40000 };

function write(name: string, seeds: { hex?: string[]; text?: string[] }): void {
  const file = new URL(`${name}.json`, CORPUS);
  const old = existsSync(file) ? (JSON.parse(readFileSync(file, 'utf8')) as { crashers?: string[] }) : {};
  writeFileSync(file, `${JSON.stringify({ ...seeds, crashers: old.crashers ?? [] }, null, 2)}\n`);
}

const binding = encodeStunMessage({ method: StunMethod.Binding, class: StunClass.Request, transactionId: tid, attributes: [] }, { fingerprint: true });
const allocate = encodeStunMessage({
  method: StunMethod.Allocate,
  class: StunClass.Request,
  transactionId: tid,
  attributes: [attr(Attr.RequestedTransport, 17), attr(Attr.Lifetime, 600), attr(Attr.Username, 'alice')],
});
const send = encodeStunMessage({
  method: StunMethod.Send,
  class: StunClass.Indication,
  transactionId: tid,
  attributes: [attr(Attr.XorPeerAddress, v4), attr(Attr.Data, new Uint8Array(5).fill(9))],
});
const cd = (channel: number, n: number, padded = false): Uint8Array =>
  encodeChannelData(
    channel,
    new Uint8Array(n).map((_, i) => i),
    { padded },
  );

write('channel-data', { hex: [cd(0x4000, 0), cd(0x4001, 1), cd(0x4fff, 4), cd(0x4abc, 5, true), cd(0x4100, 100), cd(0x4200, 1200)].map(hex) });
write('stun-stream', {
  hex: [binding, cat(binding, allocate), cat(cd(0x4000, 3, true), send, cd(0x4fff, 0, true)), cat(allocate, cd(0x4001, 200, true), binding)].map(hex),
});
write('rfc4571', {
  hex: [encodeRfc4571(binding), cat(encodeRfc4571(new Uint8Array(0)), encodeRfc4571(send)), cat(encodeRfc4571(allocate), encodeRfc4571(binding))].map(hex),
});

const data = (flags: number, id: number, payload: Uint8Array): Uint8Array => cat(encodeMuxHeader(MuxType.Data, flags, id, payload.length), payload);
const yamux = [
  encodeMuxHeader(MuxType.Ping, MuxFlag.SYN, 0, 42),
  cat(
    encodeMuxHeader(MuxType.WindowUpdate, MuxFlag.SYN, 1, 0),
    data(0, 1, new TextEncoder().encode('hello')),
    encodeMuxHeader(MuxType.WindowUpdate, MuxFlag.FIN, 1, 0),
  ),
  cat(data(MuxFlag.SYN, 3, new Uint8Array(300).fill(1)), encodeMuxHeader(MuxType.WindowUpdate, 0, 3, 65536), data(MuxFlag.FIN, 3, new Uint8Array(0))),
  cat(
    encodeMuxHeader(MuxType.WindowUpdate, MuxFlag.SYN, 5, 0),
    encodeMuxHeader(MuxType.WindowUpdate, MuxFlag.RST, 5, 0),
    encodeMuxHeader(MuxType.GoAway, 0, 0, 0),
  ),
  cat(data(MuxFlag.SYN, 2, new Uint8Array(40)), data(MuxFlag.SYN, 4, new Uint8Array(2000).fill(2)), encodeMuxHeader(MuxType.Ping, MuxFlag.ACK, 0, 7)),
];
write('yamux-reader', { hex: yamux.map(hex) });
write('yamux-session', { hex: yamux.map(hex) });

const control: ExposeControlMessage[] = [
  { v: 1, type: 'challenge', nonce: 'AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8', realm: 'nat.example' },
  { v: 1, type: 'hello', auth: { method: 'password', username: 'alice', mac: 'A'.repeat(43) } },
  { v: 1, type: 'welcome', user: 'alice', publicIp: '203.0.113.9' },
  { v: 1, type: 'expose', id: 1, transport: 'tcp', port: 8080, allow: ['198.51.100.0/24', '2001:db8::/32'], deny: ['198.51.100.7'] },
  { v: 1, type: 'exposed', ref: 1, transport: 'udp', port: 40000, address: '203.0.113.9:40000' },
  { v: 1, type: 'refused', ref: 2, code: 'taken', message: 'port 8080 is taken' },
  { v: 1, type: 'unexpose', transport: 'tcp', port: 8080 },
  { v: 1, type: 'revoked', transport: 'tcp', port: 8080, reason: 'quota' },
  { v: 1, type: 'error', code: 'bad-message', message: 'bad' },
];
write('expose-control', { hex: control.map((m) => hex(encodeControlMessage(m))) });

const ALICE = 'eh7ddx5bksrgcytl7bkai36se4nxx3kl';
const BOB = 'mzuhvlpymk6xo3epygfy5h4oeaejofef';
const SESSION = 'Qm9vbGVhbkxvZ2ljMTIz';
const CANDIDATE = 'candidate:842163049 1 udp 1677729535 203.0.113.7 46154 typ srflx raddr 198.18.0.2 rport 46154';
const signalling: SignallingMessage[] = [
  { v: 1, type: 'challenge', nonce: 'AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8' },
  { v: 1, type: 'register', id: 'reg-1', publicKey: '11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo', signature: `${'A'.repeat(85)}w` },
  {
    v: 1,
    type: 'registered',
    ref: 'reg-1',
    peerId: ALICE,
    iceServers: [{ urls: 'stun:127.0.0.1:3478' }, { urls: ['turn:127.0.0.1:3478?transport=udp'], username: '1700000000:alice', credential: 'c2VjcmV0' }],
    ttl: 86400,
  },
  {
    v: 1,
    type: 'offer',
    id: 'o1',
    from: ALICE,
    to: BOB,
    sessionId: SESSION,
    ufrag: 'Ab3+',
    pwd: 'asd88fgpdd777uzjYhagZg',
    candidates: [CANDIDATE],
    app: { noise: 'fp_xyz', 'link.version': '1' },
  },
  { v: 1, type: 'answer', from: BOB, to: ALICE, sessionId: SESSION, ufrag: 'zzzz', pwd: 'asd88fgpdd777uzjYhagZg', candidates: [] },
  { v: 1, type: 'candidate', from: ALICE, to: BOB, sessionId: SESSION, candidate: CANDIDATE },
  { v: 1, type: 'end-of-candidates', from: BOB, to: ALICE, sessionId: SESSION },
  { v: 1, type: 'bye', from: ALICE, to: BOB, sessionId: SESSION, reason: 'user closed the tunnel' },
  { v: 1, type: 'error', code: 'peer-offline', message: 'peer is not connected', ref: 'o1' },
  { v: 1, type: 'ping', id: 'hb-7' },
  { v: 1, type: 'pong', ref: 'hb-7' },
  { v: 1, type: 'claim-name', id: 'n1', name: 'zeronet-home' },
  { v: 1, type: 'resolve-name', id: 'n2', name: 'zeronet-home' },
  { v: 1, type: 'name', ref: 'n1', name: 'zeronet-home', peerId: ALICE, online: true },
];
write('signalling', { text: signalling.map((m) => encodeSignallingMessage(m)) });

write('ice-candidate', {
  text: [
    CANDIDATE,
    'candidate:1 1 udp 2130706431 198.18.0.2 46154 typ host',
    'a=candidate:1 1 UDP 2122252543 1f4712db-ea17-4bcf-a596-105139dfd8bf.local 54400 typ host generation 0\r\n',
    'candidate:2 1 tcp 1518280447 2001:db8::7 9 typ host tcptype active',
    'candidate:3 2 TCP 16777215 192.0.2.1 3478 typ relay raddr 0.0.0.0 rport 0 tcptype passive network-id 1 network-cost 50',
    'candidate:4 1 udp 1686052607 ::1 1 typ prflx',
  ],
});

const nonce = new Uint8Array(12).fill(0x33);
const pcp = [
  encodePcpResponse({ opcode: 'announce', resultCode: 0, lifetime: 0, epoch: 100 }),
  encodePcpResponse({
    opcode: 'map',
    resultCode: 0,
    lifetime: 7200,
    epoch: 5,
    nonce,
    protocol: 'udp',
    internalPort: 4000,
    assignedExternalPort: 40000,
    assignedExternalAddress: '203.0.113.9',
  }),
  encodePcpResponse({
    opcode: 'peer',
    resultCode: 0,
    lifetime: 60,
    epoch: 6,
    nonce,
    protocol: 'tcp',
    internalPort: 22,
    assignedExternalPort: 2222,
    assignedExternalAddress: '2001:db8::1',
    remotePeerPort: 443,
    remotePeerAddress: '198.51.100.4',
    options: [{ code: 1, data: new Uint8Array(16) }],
  }),
  encodePcpResponse({
    opcode: 'map',
    resultCode: 8,
    lifetime: 30,
    epoch: 7,
    nonce,
    protocol: 'all',
    internalPort: 0,
    assignedExternalPort: 0,
    assignedExternalAddress: '::',
    options: [{ code: 2, data: new Uint8Array(0) }],
  }),
];
write('pcp', { hex: pcp.map(hex) });

// external address 203.0.113.9; map UDP 5000 -> 10000 for 7200 s; map TCP 22 -> 22 refused (result 3, header and epoch only)
write('natpmp', { hex: ['00800000000004d2cb007109', '00810000000000641388271000001c20', '00820000000000640016001600000000', '0080000300000005', '00820003'] });

write('ssdp', {
  text: [
    'HTTP/1.1 200 OK\r\nCACHE-CONTROL: max-age=120\r\nST: urn:schemas-upnp-org:device:InternetGatewayDevice:1\r\nUSN: uuid:3a5a0cb4-6b6d-4f7c-9d5e-1d2c3b4a5f60::urn:schemas-upnp-org:device:InternetGatewayDevice:1\r\nEXT:\r\nSERVER: Debian UPnP/1.1 MiniUPnPd/2.3.1\r\nLOCATION: http://198.18.0.1:5555/rootDesc.xml\r\n\r\n',
    'HTTP/1.1 200 OK\nLocation: http://[fe80::1]:49000/igd.xml\nst: upnp:rootdevice\nusn: uuid:x::upnp:rootdevice\n\n',
  ],
});
console.log('corpus written');
