/**
 * The plugin's PROXY v2 reader (integrations/zeronet/NatTraversal/ProxyV2.py) against the headers
 * @nat/protocol writes (what `nat expose --proxy-protocol` sends): on a socket pair, the reader
 * must return the original source and consume exactly the header, so that the bytes after it (a
 * TLS ClientHello, ZeroNet's msgpack) reach ZeroNet untouched; a stream that is not PROXY v2 must
 * be left as it is. Runs Debian's python3 without ZeroNet (the reader needs only the standard library).
 */
import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { describe, expect, test } from 'vitest';
import { encodeProxyV2Header } from '@nat/protocol';
import { PYTHON } from './zeronet.js';

const PLUGIN_DIR = fileURLToPath(new URL('../../integrations/zeronet/NatTraversal', import.meta.url));

const READ_PY = `
import json, socket, sys
sys.path.insert(0, sys.argv[1])
import ProxyV2
data = bytes.fromhex(sys.argv[2])
a, b = socket.socketpair()
a.sendall(data)
a.close()
out = {"header": ProxyV2.startsWithHeader(b, timeout=2)}
if out["header"]:
    try:
        out["source"] = ProxyV2.readHeader(b)
    except ProxyV2.ProxyV2Error as err:
        out["error"] = str(err)
rest = b""
while True:
    chunk = b.recv(65536)
    if not chunk:
        break
    rest += chunk
out["rest"] = rest.hex()
print(json.dumps(out))
`;

interface ReadResult {
  header: boolean;
  source?: [string, number] | null;
  error?: string;
  rest: string;
}

function read(bytes: Uint8Array): ReadResult {
  const out = execFileSync(PYTHON, ['-c', READ_PY, PLUGIN_DIR, Buffer.from(bytes).toString('hex')], { encoding: 'utf8', timeout: 20_000 });
  return JSON.parse(out) as ReadResult;
}

const after = Buffer.from('\x16\x03\x01 then the peer speaks', 'latin1');
const cat = (...parts: Uint8Array[]): Buffer => Buffer.concat(parts);

describe('the plugin reads the PROXY v2 header that nat expose --proxy-protocol sends', () => {
  test('IPv4: the real source, and every byte after the header left for ZeroNet', () => {
    const header = encodeProxyV2Header('tcp', { family: 'IPv4', address: '203.0.113.30', port: 40123 }, { family: 'IPv4', address: '127.0.0.1', port: 15441 });
    expect(read(cat(header, after))).toEqual({ header: true, source: ['203.0.113.30', 40123], rest: after.toString('hex') });
  });

  test('IPv6: the real source', () => {
    const header = encodeProxyV2Header('tcp', { family: 'IPv6', address: '2001:db8::7', port: 5000 }, { family: 'IPv6', address: '::1', port: 15441 });
    expect(read(cat(header, after))).toEqual({ header: true, source: ['2001:db8::7', 5000], rest: after.toString('hex') });
  });

  test('LOCAL (no address): the socket keeps its own address', () => {
    expect(read(cat(encodeProxyV2Header('tcp'), after))).toEqual({ header: true, source: null, rest: after.toString('hex') });
  });

  test('a local client that speaks ZeroNet at once is left untouched', () => {
    const plain = Buffer.from([0x82, 0xa3, 0x63, 0x6d, 0x64, 0xa9]); // msgpack {"cmd": "handshake"...
    expect(read(plain)).toEqual({ header: false, rest: plain.toString('hex') });
  });

  test('a header cut short is an error, not a hang', () => {
    const header = encodeProxyV2Header('tcp', { family: 'IPv4', address: '203.0.113.30', port: 1 }, { family: 'IPv4', address: '127.0.0.1', port: 2 });
    const r = read(header.subarray(0, 20));
    expect(r.header).toBe(true);
    expect(r.error).toMatch(/connection closed after 4 of 12 header bytes/);
  });
});
