/**
 * The proxyProtocolFrom key (`--proxy-protocol-from`): one prefix or a list in a config file,
 * comma-separated or repeated on the command line, and a value that is not a prefix named with
 * what it expects.
 */
import { describe, expect, it } from 'vitest';
import { ConfigError, resolveConfig, toStunServerInit } from '../src/config.js';
import { proxyProtocolFromFlag } from '../src/proxy-flags.js';
import { start } from './helpers.js';

describe('proxyProtocolFrom / --proxy-protocol-from', () => {
  it('a config key (one value or a list) reaches the STUN server with the TLS handshake deadline', () => {
    const one = resolveConfig({ listen: '127.0.0.1', proxyProtocolFrom: '10.0.0.0/8', tlsHandshakeTimeout: 4 }, {}, 'test');
    expect(toStunServerInit(one).proxyProtocol).toEqual({ from: ['10.0.0.0/8'], timeoutMs: 4000 });
    const none = resolveConfig({ listen: '127.0.0.1' }, {}, 'test');
    expect(toStunServerInit(none).proxyProtocol).toBeUndefined();
  });

  it('the flag takes comma-separated and repeated values, over the file', () => {
    const flags = proxyProtocolFromFlag(['10.0.0.1, 10.0.0.2', '2001:db8::/32']);
    const c = resolveConfig({ listen: '127.0.0.1', proxyProtocolFrom: ['192.0.2.0/24'] }, flags, 'test');
    expect(c.proxyProtocolFrom).toEqual(['10.0.0.1', '10.0.0.2', '2001:db8::/32']);
  });

  it('a value that is not a prefix: exit 2, naming the flag and what it expects', { timeout: 30_000 }, async () => {
    expect(() => resolveConfig({ listen: '127.0.0.1', proxyProtocolFrom: 'balancer.example' }, {}, 'test')).toThrow(ConfigError);
    const s = start(['--listen', '127.0.0.1', '--port', '0', '--no-alt-port', '--proxy-protocol-from', 'lb.example']);
    expect(await s.exited).toBe(2);
    expect(s.err()).toMatch(/--proxy-protocol-from.*IP prefix/);
  });
});
