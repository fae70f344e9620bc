/**
 * The TURN REST API credentials (moved here from the server's turn/auth.ts so that the CLI, the
 * client and the expose service share them). Expected values are HMACs computed by another
 * implementation (Python's hmac module), not by node:crypto again.
 */
import { describe, expect, it } from 'vitest';
import {
  ANONYMOUS_RELAY_LABEL,
  anonymousRelayCredentials,
  anonymousRelayExpiry,
  anonymousRelayKey,
  anonymousRelayPassword,
  anonymousRelayPeer,
  restApiCredentials,
  restApiExpiry,
  restApiPassword,
} from '../src/index.js';

const NOW = 1_700_000_000_000; // ms
const PEER = 'a'.repeat(32);

describe('TURN REST API credentials', () => {
  it('makes coturn use-auth-secret credentials: username expiry:user, password base64(HMAC-SHA1(secret, username))', () => {
    expect(restApiCredentials('S3CRET', 'alice', 600, NOW)).toEqual({
      username: '1700000600:alice',
      password: 'QEhc2CPYoh7j5VzF3OgvgswEGdQ=',
      expiresAt: 1_700_000_600,
    });
    // no user: a bare expiry
    expect(restApiCredentials('S3CRET', '', 600, NOW + 999)).toEqual({
      username: '1700000600',
      password: '87qEz9YGjoHHEqLaZ5VyXfMJrYE=',
      expiresAt: 1_700_000_600,
    });
    expect(restApiPassword('S3CRET', '1700000600:alice')).toBe('QEhc2CPYoh7j5VzF3OgvgswEGdQ=');
  });

  it('reads the expiry of a REST username, and none from a static user name', () => {
    expect(restApiExpiry('1700000600:alice')).toBe(1_700_000_600);
    expect(restApiExpiry('1700000600')).toBe(1_700_000_600);
    expect(restApiExpiry('1700000600:~' + PEER)).toBe(1_700_000_600);
    for (const u of ['alice', 'alice:1700000600', '', '1234567890123:x', '-5:x', '1e9:x']) expect(restApiExpiry(u), u).toBeUndefined();
  });
});

describe('anonymous relay credentials', () => {
  it('are signed with a key derived from the secret, never with the secret itself', () => {
    expect(ANONYMOUS_RELAY_LABEL).toBe('nat-anonymous-relay-v1');
    expect(anonymousRelayKey('S3CRET').toString('hex')).toBe('45d95a29dcc9ad3cf71c91539304f433903616041dd5fdd15aae820c66cce16b');
    const c = anonymousRelayCredentials('S3CRET', PEER, 600, NOW);
    expect(c).toEqual({ username: `1700000600:~${PEER}`, password: 'ZiwgpDr5DTlUwz7N6QHHhEagubU=', expiresAt: 1_700_000_600 });
    expect(anonymousRelayPassword(anonymousRelayKey('S3CRET'), c.username)).toBe(c.password);
    // the same username with the operator's REST password is another password
    expect(restApiPassword('S3CRET', c.username)).not.toBe(c.password);
  });

  it('name their peer id and expiry by the form of the username alone', () => {
    expect(anonymousRelayPeer(`1700000600:~${PEER}`)).toBe(PEER);
    expect(anonymousRelayExpiry(`1700000600:~${PEER}`)).toBe(1_700_000_600);
    for (const u of [
      '1700000600:alice',
      `1700000600:${PEER}`,
      `1700000600:~${PEER}x`,
      `x:~${PEER}`,
      `1700000600:~${'A'.repeat(32)}`,
      `1700000600:~${'a'.repeat(31)}1`,
    ]) {
      expect(anonymousRelayPeer(u), u).toBeUndefined();
      expect(anonymousRelayExpiry(u), u).toBeUndefined();
    }
  });
});
