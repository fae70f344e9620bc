/**
 * --external-ip PUBLIC[/PRIVATE] (config key externalIps): its parsing and errors, and the
 * built binary behind a pretend 1:1 NAT on loopback (bound to 127.0.18.1, "public" 127.0.18.9):
 * the rendezvous hands out TURN URIs on the public address, TURN relayed addresses carry it, and
 * the expose service announces public ports on it.
 */
import { spawnSync } from 'node:child_process';
import { createServer, connect as tcpConnect } from 'node:net';
import { describe, expect, it } from 'vitest';
import { ConfigError, resolveConfig, toStunServerInit } from '../src/config.js';
import { bin, start, until } from './helpers.js';

const errorOf = (fromFile: Record<string, unknown>, flags: Record<string, unknown> = {}): string => {
  try {
    resolveConfig(fromFile, flags, 'test');
  } catch (e) {
    expect(e).toBeInstanceOf(ConfigError);
    return (e as Error).message;
  }
  throw new Error('no ConfigError');
};

describe('externalIps (--external-ip)', () => {
  it('takes PUBLIC (for the listen and relay address of its family) and PUBLIC/PRIVATE, one value or a list', () => {
    expect(toStunServerInit(resolveConfig({ listen: '10.0.0.5', externalIps: '203.0.113.5' }, {}, 'test')).external).toEqual([
      { public: '203.0.113.5', private: '10.0.0.5' },
    ]);
    const both = resolveConfig(
      { listen: ['10.0.0.5', 'fd00::5'], alternate: '10.0.0.6', relayIps: ['10.0.0.7'], externalIps: ['203.0.113.5', '203.0.113.6/10.0.0.6', '2001:db8::5'] },
      {},
      'test',
    );
    expect(toStunServerInit(both).external).toEqual([
      { public: '203.0.113.6', private: '10.0.0.6' },
      { public: '203.0.113.5', private: '10.0.0.5' },
      { public: '203.0.113.5', private: '10.0.0.7' },
      { public: '2001:db8::5', private: 'fd00::5' },
    ]);
    expect(toStunServerInit(resolveConfig({ listen: '10.0.0.5' }, {}, 'test')).external).toBeUndefined();
  });

  it('is in --help, flag and config key', () => {
    const help = spawnSync(process.execPath, [bin, '--help'], { encoding: 'utf8' }).stdout;
    expect(help).toMatch(/--external-ip <pub\[\/priv\]>\s+behind a 1:1 NAT: tell clients PUB for PRIV/);
    expect(help).toMatch(/listen, alternate, externalIps,/);
  });

  it('says what is wrong with a value, naming the flag or the key', () => {
    expect(errorOf({ listen: '10.0.0.5' }, { externalIps: ['203.0.113.5/2001:db8::1'] })).toMatch(
      /--external-ip: expected a public IP address, or PUBLIC\/PRIVATE .*, got the string "203\.0\.113\.5\/2001:db8::1" \(not PUBLIC or PUBLIC\/PRIVATE \(two IP addresses of one family\)\)/,
    );
    expect(errorOf({ listen: '10.0.0.5', externalIps: 'my-vm.example' })).toMatch(/config key "externalIps": expected a public IP address/);
    expect(errorOf({ listen: '10.0.0.5' }, { externalIps: ['2001:db8::5'] })).toMatch(
      /--external-ip: 2001:db8::5 has no IPv6 listen address to apply to: give --listen with an IPv6 address, or PUBLIC\/PRIVATE/,
    );
    expect(errorOf({ listen: '10.0.0.5' }, { externalIps: ['203.0.113.5/10.0.0.9'] })).toMatch(
      /--external-ip: 203\.0\.113\.5\/10\.0\.0\.9: 10\.0\.0\.9 is not an address this server binds \(its --listen, --alternate and --relay-ip addresses: 10\.0\.0\.5\)/,
    );
    expect(errorOf({ listen: '10.0.0.5' }, { externalIps: ['203.0.113.5', '203.0.113.6'] })).toMatch(
      /203\.0\.113\.6: the IPv4 listen address has a public address already/,
    );
  });
});

describe('nat-server --external-ip on loopback', () => {
  it('hands out TURN URIs, relayed addresses and public ports on the public address', async () => {
    const { RendezvousClient, generateIdentity, TurnClient, exposePublic } = await import('@nat/client');
    const target = createServer((s) => s.end('hello from behind the NAT\n'));
    await new Promise<void>((r) => target.listen(0, '127.0.18.30', () => r()));
    const exposeBase = 40000 + Math.floor(Math.random() * 200) * 100;
    const s = start([
      ...['--listen', '127.0.18.1', '--external-ip', '127.0.18.9', '--port', '0', '--no-alt-port', '--log-level', 'info'],
      ...['--realm', 'ext.test', '--auth-secret', 'S3CRET', '--user', 'alice:alice-pw', '--allow-peer', '127.0.0.0/8'],
      ...['--rendezvous-port', '0', '--expose-ports', `${exposeBase}-${exposeBase + 99}`],
    ]);
    try {
      expect(await until(() => /expose ws:/.test(s.err())), s.err()).toBe(true);
      const url = /rendezvous (ws:\/\/\S+)/.exec(s.err())![1]!;
      expect(s.err()).toContain('external 127.0.18.9 for 127.0.18.1 (told to clients instead)\n');
      // The start-up line names the bound URL first (tests and local tools dial it) and what peers dial.
      expect(s.err()).toContain(`rendezvous ${url} (peers dial ${url.replace('127.0.18.1', '127.0.18.9')})\n`);
      const port = Number(/listening udp 127\.0\.18\.1:(\d+)/.exec(s.err())![1]);
      const tcpPort = Number(/listening tcp 127\.0\.18\.1:(\d+)/.exec(s.err())![1]);

      const client = await RendezvousClient.connect({ url, identity: generateIdentity() });
      try {
        expect(client.iceServers.flatMap((i) => [i.urls].flat()).sort()).toEqual(
          [`stun:127.0.18.9:${port}`, `turn:127.0.18.9:${port}`, `turn:127.0.18.9:${tcpPort}?transport=tcp`].sort(),
        );
        const turn = client.iceServers.find((i) => [i.urls].flat().some((u: string) => u.startsWith('turn:')))!;
        // Nothing listens on 127.0.18.9 here: the client reaches the private address, as the provider's NAT would forward it.
        const relay = await TurnClient.connect({ server: `127.0.18.1:${port}`, username: turn.username!, password: turn.credential! });
        expect(relay.relayedAddress.address).toBe('127.0.18.9');
        await relay.close();
      } finally {
        await client.close();
      }

      const tunnel = exposePublic({
        url,
        credentials: { username: 'alice', password: 'alice-pw' },
        target: { host: '127.0.18.30', port: (target.address() as { port: number }).port },
        reconnect: false,
      });
      try {
        const granted = await tunnel.ready;
        expect(granted.address).toBe(`127.0.18.9:${granted.port}`);
        // The public port is bound on the private address; a plain TCP client reaches the target through it.
        const text = await new Promise<string>((resolve, reject) => {
          let got = '';
          const c = tcpConnect(granted.port, '127.0.18.1');
          c.on('data', (d) => (got += String(d)));
          c.on('end', () => resolve(got));
          c.on('error', reject);
        });
        expect(text).toBe('hello from behind the NAT\n');
      } finally {
        await tunnel.close();
      }
    } finally {
      s.child.kill('SIGTERM');
      target.close();
    }
    expect(await s.exited).toBe(0);
  }, 60_000);
});
