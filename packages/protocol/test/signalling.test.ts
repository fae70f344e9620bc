import { createHash, createPublicKey, generateKeyPairSync, sign, verify } from 'node:crypto';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { EncodeError, ParseError } from '../src/errors.js';
import {
  MAX_SIGNALLING_MESSAGE_BYTES,
  PeerId,
  REGISTER_SIGNING_CONTEXT,
  SIGNALLING_DIRECTIONS,
  SIGNALLING_VERSION,
  SignallingMessage,
  base32Encode,
  decodeSignallingMessage,
  encodeSignallingMessage,
  parseSignallingMessage,
  peerIdFromPublicKey,
  registerSigningPayload,
  tryDecodeSignallingMessage,
} from '../src/signalling/index.js';

// RFC 4648 section 10 test vectors for base32 ("BASE32(...) = ..."), lower-cased, '=' removed.
const RFC4648_BASE32: ReadonlyArray<readonly [string, string]> = [
  ['', ''],
  ['f', 'MY======'],
  ['fo', 'MZXQ===='],
  ['foo', 'MZXW6==='],
  ['foob', 'MZXW6YQ='],
  ['fooba', 'MZXW6YTB'],
  ['foobar', 'MZXW6YTBOI======'],
];
const rfcVector = (padded: string): string => padded.replace(/=+$/, '').toLowerCase();

/** An independent base32 for the test: through a string of bits, 5 at a time. */
function referenceBase32(bytes: Uint8Array): string {
  const alphabet = 'abcdefghijklmnopqrstuvwxyz234567';
  let bits = '';
  for (const b of bytes) bits += b.toString(2).padStart(8, '0');
  while (bits.length % 5 !== 0) bits += '0';
  let out = '';
  for (let i = 0; i < bits.length; i += 5) out += alphabet[parseInt(bits.slice(i, i + 5), 2)];
  return out;
}

const utf8 = (s: string): Uint8Array => new TextEncoder().encode(s);

const ALICE = 'eh7ddx5bksrgcytl7bkai36se4nxx3kl';
const BOB = 'mzuhvlpymk6xo3epygfy5h4oeaejofef';
const SESSION = 'Qm9vbGVhbkxvZ2ljMTIz';
const NONCE = 'AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8';
const UFRAG = 'Ab3+';
const PWD = 'asd88fgpdd777uzjYhagZg';
const CANDIDATE = 'candidate:842163049 1 udp 1677729535 203.0.113.7 46154 typ srflx raddr 198.18.0.2 rport 46154';

function expectParseError(fn: () => unknown, pattern: RegExp): ParseError {
  let thrown: unknown;
  try {
    fn();
  } catch (error) {
    thrown = error;
  }
  expect(thrown).toBeInstanceOf(ParseError);
  const error = thrown as ParseError;
  expect(error.code).toBe('BAD_SYNTAX');
  expect(error.message).toMatch(pattern);
  return error;
}

/** One valid message of every type. */
const SAMPLES: Record<SignallingMessage['type'], SignallingMessage> = {
  challenge: { v: 1, type: 'challenge', nonce: NONCE },
  register: {
    v: 1,
    type: 'register',
    id: 'reg-1',
    publicKey: '11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo',
    signature: `${'A'.repeat(85)}w`,
  },
  registered: {
    v: 1,
    type: 'registered',
    ref: 'reg-1',
    peerId: ALICE,
    iceServers: [
      { urls: 'stun:127.0.0.1:3478' },
      {
        urls: ['turn:127.0.0.1:3478?transport=udp', 'turns:turn.example.net:5349'],
        username: '1700000000:alice',
        credential: 'c2VjcmV0',
      },
    ],
    ttl: 86400,
  },
  offer: {
    v: 1,
    type: 'offer',
    id: 'o1',
    from: ALICE,
    to: BOB,
    sessionId: SESSION,
    ufrag: UFRAG,
    pwd: PWD,
    candidates: [CANDIDATE, 'candidate:1 1 udp 2130706431 198.18.0.2 46154 typ host'],
    app: { noise: 'sha256-base64url-fingerprint_xyz', 'link.version': '1' },
  },
  answer: {
    v: 1,
    type: 'answer',
    from: BOB,
    to: ALICE,
    sessionId: SESSION,
    ufrag: 'zzzz',
    pwd: PWD,
    candidates: [],
  },
  candidate: { v: 1, type: 'candidate', from: ALICE, to: BOB, sessionId: SESSION, candidate: CANDIDATE },
  'end-of-candidates': { v: 1, type: 'end-of-candidates', from: BOB, to: ALICE, sessionId: SESSION },
  bye: { v: 1, type: 'bye', from: ALICE, to: BOB, sessionId: SESSION, reason: 'user closed the tunnel' },
  error: { v: 1, type: 'error', code: 'peer-offline', message: 'peer mzuh... is not connected', ref: 'o1' },
  ping: { v: 1, type: 'ping', id: 'hb-7' },
  pong: { v: 1, type: 'pong', ref: 'hb-7' },
  'claim-name': { v: 1, type: 'claim-name', id: 'n1', name: 'zeronet-home' },
  'resolve-name': { v: 1, type: 'resolve-name', id: 'n2', name: 'zeronet-home' },
  name: { v: 1, type: 'name', ref: 'n1', name: 'zeronet-home', peerId: ALICE, online: true },
};

describe('base32 and peer ids', () => {
  it('the test reference base32 matches RFC 4648 section 10', () => {
    for (const [input, padded] of RFC4648_BASE32) expect(referenceBase32(utf8(input))).toBe(rfcVector(padded));
  });

  it('base32Encode matches RFC 4648 section 10 (lower case, no padding)', () => {
    for (const [input, padded] of RFC4648_BASE32) expect(base32Encode(utf8(input))).toBe(rfcVector(padded));
    expect(base32Encode(utf8('foobar'))).toBe('mzxw6ytboi');
  });

  it('base32Encode agrees with the reference on random bytes', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 64 }), (bytes) => {
        expect(base32Encode(bytes)).toBe(referenceBase32(bytes));
      }),
    );
  });

  it('peerIdFromPublicKey is base32 of the first 20 bytes of SHA-256 of the raw key', () => {
    const keys = [new Uint8Array(32), Uint8Array.from({ length: 32 }, (_, i) => i)];
    for (const key of keys) {
      const expected = referenceBase32(createHash('sha256').update(key).digest().subarray(0, 20));
      expect(peerIdFromPublicKey(key)).toBe(expected);
      expect(expected).toHaveLength(32);
    }
    // The public key of RFC 8032 section 7.1 TEST 1; value computed outside Node.
    const rfc8032Test1 = Buffer.from('d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a', 'hex');
    expect(peerIdFromPublicKey(rfc8032Test1)).toBe(ALICE);
    expect(peerIdFromPublicKey(new Uint8Array(32))).toBe(BOB);
  });

  it('peerIdFromPublicKey rejects a key that is not 32 bytes', () => {
    expect(() => peerIdFromPublicKey(new Uint8Array(31))).toThrow(EncodeError);
    expect(() => peerIdFromPublicKey(new Uint8Array(33))).toThrow(EncodeError);
  });

  it('the PeerId schema takes 32 lower-case base32 characters only', () => {
    expect(PeerId.safeParse(ALICE).success).toBe(true);
    for (const bad of [ALICE.toUpperCase(), ALICE.slice(1), `${ALICE}a`, `${ALICE.slice(1)}1`, `${ALICE.slice(1)}8`, `${ALICE.slice(1)}=`]) {
      expect(PeerId.safeParse(bad).success, bad).toBe(false);
    }
  });
});

describe('register signature', () => {
  it('the signed bytes are UTF-8 of "nat-rendezvous-v1:" + nonce + ":" + peerId', () => {
    const payload = registerSigningPayload(NONCE, ALICE);
    expect(REGISTER_SIGNING_CONTEXT).toBe('nat-rendezvous-v1:');
    expect(Buffer.from(payload).toString('latin1')).toBe(`nat-rendezvous-v1:${NONCE}:${ALICE}`);
    expect(payload.length).toBe(18 + NONCE.length + 1 + 32);
  });

  it('refuses a nonce or peer id outside their schemas', () => {
    expect(() => registerSigningPayload(`${NONCE}:x`, ALICE)).toThrow(EncodeError);
    expect(() => registerSigningPayload('short', ALICE)).toThrow(EncodeError);
    expect(() => registerSigningPayload(NONCE, ALICE.toUpperCase())).toThrow(EncodeError);
  });

  it('a peer signs with a node:crypto Ed25519 key and the server verifies from the message alone', () => {
    const { publicKey, privateKey } = generateKeyPairSync('ed25519');
    const jwk = publicKey.export({ format: 'jwk' });
    const raw = Buffer.from(jwk.x ?? '', 'base64url');
    expect(raw).toHaveLength(32);
    const peerId = peerIdFromPublicKey(raw);

    // Client side: answer the challenge.
    const challenge = decodeSignallingMessage(encodeSignallingMessage({ v: 1, type: 'challenge', nonce: NONCE }));
    if (challenge.type !== 'challenge') throw new Error('expected a challenge');
    const signature = sign(null, registerSigningPayload(challenge.nonce, peerId), privateKey);
    expect(signature).toHaveLength(64);
    const text = encodeSignallingMessage({
      v: 1,
      type: 'register',
      publicKey: raw.toString('base64url'),
      signature: signature.toString('base64url'),
    });

    // Server side: only the text and its own nonce.
    const register = decodeSignallingMessage(text);
    if (register.type !== 'register') throw new Error('expected a register');
    const key = createPublicKey({
      key: { kty: 'OKP', crv: 'Ed25519', x: register.publicKey },
      format: 'jwk',
    });
    const claimed = peerIdFromPublicKey(Buffer.from(register.publicKey, 'base64url'));
    expect(claimed).toBe(peerId);
    const sig = Buffer.from(register.signature, 'base64url');
    expect(verify(null, registerSigningPayload(NONCE, claimed), key, sig)).toBe(true);
    // Another nonce or another peer id does not verify.
    const otherNonce = `${NONCE.slice(0, -1)}A`;
    expect(verify(null, registerSigningPayload(otherNonce, claimed), key, sig)).toBe(false);
    expect(verify(null, registerSigningPayload(NONCE, BOB), key, sig)).toBe(false);
  });
});

describe('round trips', () => {
  it('has one sample per message type and a direction for each', () => {
    const types = SignallingMessage.options.map((option) => option.shape.type.value).sort();
    expect(Object.keys(SAMPLES).sort()).toEqual(types);
    expect(Object.keys(SIGNALLING_DIRECTIONS).sort()).toEqual(types);
    expect(SIGNALLING_DIRECTIONS.offer).toBe('relayed');
    expect(SIGNALLING_DIRECTIONS.challenge).toBe('server-to-client');
    expect(SIGNALLING_DIRECTIONS.register).toBe('client-to-server');
  });

  for (const [type, message] of Object.entries(SAMPLES)) {
    it(`${type}: encode, decode, parse`, () => {
      const text = encodeSignallingMessage(message);
      expect(JSON.parse(text)).toEqual(message);
      const decoded = decodeSignallingMessage(text);
      expect(decoded).toEqual(message);
      expect(decoded.type).toBe(type);
      expect(parseSignallingMessage(JSON.parse(text))).toEqual(message);
      expect(encodeSignallingMessage(decoded)).toBe(text);
    });
  }

  it('encodes the exact JSON text, keys in the given order', () => {
    expect(encodeSignallingMessage({ v: 1, type: 'ping', id: 'hb-7' })).toBe('{"v":1,"type":"ping","id":"hb-7"}');
    expect(SIGNALLING_VERSION).toBe(1);
  });

  it('the largest valid offer and registered messages stay under the 64 KiB cap', () => {
    const worstLine = `candidate:${'x'.repeat(502)}`;
    const biggestOffer: SignallingMessage = {
      v: 1,
      type: 'offer',
      id: '"'.repeat(64), // visible ASCII, escaped to two bytes each
      from: ALICE,
      to: BOB,
      sessionId: 'x'.repeat(64),
      ufrag: 'u'.repeat(256),
      pwd: 'p'.repeat(256),
      candidates: Array.from({ length: 64 }, () => worstLine),
      app: Object.fromEntries(Array.from({ length: 16 }, (_, i) => [`k${i}`.padEnd(64, 'k'), 'v'.repeat(1024)])),
    };
    const offerText = encodeSignallingMessage(biggestOffer);
    expect(Buffer.byteLength(offerText)).toBeLessThanOrEqual(MAX_SIGNALLING_MESSAGE_BYTES);
    expect(decodeSignallingMessage(offerText)).toEqual(biggestOffer);
    // U+0000 takes 6 bytes in JSON ("\u0000"): the worst case for free-text fields.
    const server = {
      urls: Array.from({ length: 8 }, () => `turn:${'h'.repeat(251)}`),
      username: '\u0000'.repeat(512),
      credential: '\u0000'.repeat(512),
    };
    const biggestRegistered: SignallingMessage = {
      v: 1,
      type: 'registered',
      id: 'i'.repeat(64),
      ref: 'r'.repeat(64),
      peerId: ALICE,
      iceServers: [server, server, server, server],
      ttl: 604800,
    };
    const registeredText = encodeSignallingMessage(biggestRegistered);
    expect(Buffer.byteLength(registeredText)).toBeLessThanOrEqual(MAX_SIGNALLING_MESSAGE_BYTES);
    expect(decodeSignallingMessage(registeredText)).toEqual(biggestRegistered);
  });
});

describe('rejections', () => {
  const offerWith = (patch: Record<string, unknown>): Record<string, unknown> => ({
    ...SAMPLES.offer,
    ...patch,
  });

  it('a version other than 1 is "unsupported", and the result says version-unsupported', () => {
    const text = JSON.stringify({ ...SAMPLES.ping, v: 2 });
    expectParseError(() => decodeSignallingMessage(text), /^v: signalling version 2 unsupported/);
    expect(tryDecodeSignallingMessage(text)).toMatchObject({
      ok: false,
      code: 'version-unsupported',
      ref: 'hb-7',
    });
    expectParseError(() => parseSignallingMessage({ v: '1', type: 'ping' }), /version "1" unsupported/);
    // A missing v is a malformed message, not another version.
    expectParseError(() => parseSignallingMessage({ type: 'ping' }), /^bad signalling message: v: /);
    expect(tryDecodeSignallingMessage('{"type":"ping"}')).toMatchObject({ ok: false, code: 'bad-message' });
  });

  it('an unknown type', () => {
    expectParseError(() => parseSignallingMessage({ v: 1, type: 'subscribe' }), /type: unknown message type/);
    expectParseError(() => parseSignallingMessage({ v: 1 }), /type: unknown message type/);
    expectParseError(() => decodeSignallingMessage('{"v":1,"type":"Offer"}'), /type: unknown message type/);
  });

  it('extra keys, named by their path', () => {
    expectParseError(() => parseSignallingMessage({ ...SAMPLES.ping, evil: true }), /\bevil: unknown key/);
    expectParseError(() => parseSignallingMessage({ ...SAMPLES.ping, a: 1, b: 2 }), /a, b: unknown keys/);
    const registered = {
      ...SAMPLES.registered,
      iceServers: [{ urls: 'stun:127.0.0.1', credentialType: 'password' }],
    };
    expectParseError(() => parseSignallingMessage(registered), /iceServers\[0\]\.credentialType: unknown key/);
    // Among many problems, the unknown key is still named.
    const messy = {
      v: 1,
      type: 'offer',
      from: 'x',
      to: 'y',
      sessionId: 's',
      ufrag: 'a',
      pwd: 'b',
      candidates: [1],
      evil: 1,
    };
    expectParseError(() => parseSignallingMessage(messy), /^bad signalling message: evil: unknown key; from: /);
    // JSON.parse makes "__proto__" an own key; strict objects refuse it like any other.
    expectParseError(() => decodeSignallingMessage('{"v":1,"type":"ping","__proto__":{"x":1}}'), /__proto__: unknown key/);
  });

  it('a 100 KB string', () => {
    const huge = 'x'.repeat(100_000);
    const error = expectParseError(() => parseSignallingMessage({ ...SAMPLES.error, message: huge }), /message: Too big/);
    expect(error.message.length).toBeLessThan(400);
    expectParseError(() => parseSignallingMessage({ ...SAMPLES.ping, id: huge }), /^bad signalling message: id: /);
    // An unknown key 100 KB long is named, but cut short.
    const keyError = expectParseError(() => parseSignallingMessage({ ...SAMPLES.ping, [huge]: 1 }), /unknown key/);
    expect(keyError.message.length).toBeLessThan(400);
    expectParseError(() => decodeSignallingMessage(JSON.stringify({ ...SAMPLES.error, message: huge })), /larger than 65536 bytes/);
  });

  it('ICE credentials out of RFC 8839 bounds', () => {
    expectParseError(() => parseSignallingMessage(offerWith({ ufrag: 'abc' })), /^bad signalling message: ufrag: Too small/);
    expectParseError(() => parseSignallingMessage(offerWith({ ufrag: 'u'.repeat(257) })), /ufrag: Too big/);
    expectParseError(() => parseSignallingMessage(offerWith({ ufrag: 'ab-d' })), /ufrag: not ice-chars/);
    expectParseError(() => parseSignallingMessage(offerWith({ pwd: 'p'.repeat(21) })), /pwd: Too small/);
    expect(parseSignallingMessage(offerWith({ ufrag: 'u'.repeat(256), pwd: 'p'.repeat(22) })).type).toBe('offer');
  });

  it('a bad peer id', () => {
    expectParseError(() => parseSignallingMessage(offerWith({ to: BOB.toUpperCase() })), /^bad signalling message: to: not a peer id/);
    expectParseError(() => parseSignallingMessage(offerWith({ from: BOB.slice(2) })), /from: /);
    expectParseError(() => parseSignallingMessage({ ...SAMPLES.registered, peerId: `${ALICE.slice(1)}0` }), /peerId: not a peer id/);
  });

  it('bad candidates, keys and codes', () => {
    expectParseError(
      () =>
        parseSignallingMessage({
          ...SAMPLES.candidate,
          candidate: 'a=candidate:1 1 udp 1 1.2.3.4 5 typ host',
        }),
      /candidate: not a candidate line/,
    );
    expectParseError(() => parseSignallingMessage({ ...SAMPLES.candidate, candidate: `${CANDIDATE}\r\na=evil` }), /candidate: not a candidate line/);
    expectParseError(() => parseSignallingMessage(offerWith({ candidates: Array.from({ length: 65 }, () => CANDIDATE) })), /candidates: Too big/);
    expectParseError(() => parseSignallingMessage(offerWith({ candidates: [CANDIDATE, 'host'] })), /candidates\[1\]: not a candidate line/);
    expectParseError(() => parseSignallingMessage({ ...SAMPLES.register, publicKey: `${'A'.repeat(42)}B` }), /publicKey: not 32 bytes/);
    expectParseError(() => parseSignallingMessage({ ...SAMPLES.error, code: 'teapot' }), /code: /);
    expectParseError(() => parseSignallingMessage({ ...SAMPLES.registered, ttl: 1.5 }), /ttl: /);
    expectParseError(() => parseSignallingMessage({ ...SAMPLES.registered, iceServers: [{ urls: 'http://x' }] }), /iceServers\[0\]\.urls/);
    const manyEntries = Object.fromEntries(Array.from({ length: 17 }, (_, i) => [`k${i}`, 'v']));
    expectParseError(() => parseSignallingMessage(offerWith({ app: manyEntries })), /app: more than 16 entries/);
    expectParseError(() => parseSignallingMessage(offerWith({ app: { '-x': 'v' } })), /app/);
    expectParseError(() => parseSignallingMessage(offerWith({ app: { k: 'a"b' } })), /app\.k: not printable ASCII/);
    // A zod record would drop "__proto__" silently; the schema refuses it.
    const protoApp = `{"v":1,"type":"answer","from":"${BOB}","to":"${ALICE}","sessionId":"${SESSION}","ufrag":"abcd","pwd":"${PWD}","candidates":[],"app":{"__proto__":"x"}}`;
    expectParseError(() => decodeSignallingMessage(protoApp), /app: not an app key: "__proto__"/);
  });

  it('oversized JSON text, counted in UTF-8 bytes', () => {
    const base = encodeSignallingMessage(SAMPLES.ping);
    const exact = base + ' '.repeat(MAX_SIGNALLING_MESSAGE_BYTES - base.length);
    expect(decodeSignallingMessage(exact)).toEqual(SAMPLES.ping);
    expectParseError(() => decodeSignallingMessage(`${exact} `), /larger than 65536 bytes/);
    // 'é' is one UTF-16 unit but two UTF-8 bytes.
    const accents = `{"v":1,"type":"bye","from":"${ALICE}","to":"${BOB}","sessionId":"${SESSION}","reason":"${'é'.repeat(200)}"}`;
    expect(decodeSignallingMessage(accents, { maxBytes: accents.length + 200 }).type).toBe('bye');
    expectParseError(() => decodeSignallingMessage(accents, { maxBytes: accents.length + 199 }), /larger than/);
  });

  it('text that is not JSON', () => {
    for (const text of ['', '{v:1}', 'undefined', '{"v":1,"type":"ping"', "{'v':1}", 'ping']) {
      expectParseError(() => decodeSignallingMessage(text), /not JSON/);
    }
    expectParseError(() => decodeSignallingMessage('[1]'), /\(root\): Invalid input: expected object/);
    expectParseError(() => decodeSignallingMessage('null'), /\(root\)/);
  });

  it('deeply nested JSON within the size cap is a ParseError, not a stack overflow', () => {
    const depth = 30_000;
    expectParseError(() => decodeSignallingMessage('['.repeat(depth) + ']'.repeat(depth)), /bad signalling message|not JSON/);
    const nested = `{"v":1,"type":"ping","id":${'['.repeat(depth)}${']'.repeat(depth)}}`;
    expectParseError(() => decodeSignallingMessage(nested), /id: /);
  });

  it('encoding an invalid message is an EncodeError', () => {
    const bad = { ...SAMPLES.offer, ufrag: 'abc' } as SignallingMessage;
    expect(() => encodeSignallingMessage(bad)).toThrow(EncodeError);
    expect(() => encodeSignallingMessage({ v: 1, type: 'ping', extra: 1 } as unknown as SignallingMessage)).toThrow(/extra: unknown key/);
  });
});

describe('hostile input (property)', () => {
  const decodesOrParseError = (text: string): void => {
    let message: SignallingMessage;
    try {
      message = decodeSignallingMessage(text);
    } catch (error) {
      if (!(error instanceof ParseError)) throw error;
      expect(error.code).toBe('BAD_SYNTAX');
      expect(error.message.length).toBeLessThan(2000);
      return;
    }
    // Whatever is accepted encodes back to something that decodes to the same message.
    expect(decodeSignallingMessage(encodeSignallingMessage(message))).toEqual(message);
  };

  it('random JSON values only ever produce ParseError', () => {
    fc.assert(
      fc.property(fc.jsonValue(), (value) => decodesOrParseError(JSON.stringify(value) ?? 'null')),
      {
        numRuns: 1000,
      },
    );
  });

  it('random text only ever produces ParseError', () => {
    fc.assert(fc.property(fc.string({ unit: 'binary', maxLength: 200 }), decodesOrParseError), {
      numRuns: 500,
    });
  });

  it('mutated valid messages only ever produce ParseError', () => {
    const samples = Object.values(SAMPLES);
    const keys = [
      'v',
      'type',
      'id',
      'ref',
      'from',
      'to',
      'sessionId',
      'ufrag',
      'pwd',
      'candidates',
      'candidate',
      'app',
      'code',
      'message',
      'iceServers',
      'ttl',
      'nonce',
      '__proto__',
      'constructor',
    ];
    fc.assert(
      fc.property(
        fc.constantFrom(...samples),
        fc.array(fc.tuple(fc.oneof(fc.constantFrom(...keys), fc.string()), fc.option(fc.jsonValue(), { nil: undefined })), { maxLength: 3 }),
        (sample, edits) => {
          const value: Record<string, unknown> = JSON.parse(JSON.stringify(sample));
          for (const [key, replacement] of edits) {
            if (replacement === undefined) delete value[key];
            else
              Object.defineProperty(value, key, {
                value: replacement,
                enumerable: true,
                writable: true,
                configurable: true,
              });
          }
          decodesOrParseError(JSON.stringify(value));
        },
      ),
      { numRuns: 1000 },
    );
  });
});
