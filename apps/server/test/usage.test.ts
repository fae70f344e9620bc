/** `nat-server --version`, `--help` (grouped, rendezvous and expose described), and the start-up warning of a rendezvous that can hand out no relay. */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { start, until } from './helpers.js';

const version = (JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string }).version;

describe('nat-server --version and --help', () => {
  it('--version prints the package version and exits 0', async () => {
    for (const flag of ['--version', '-V']) {
      const s = start([flag]);
      expect(await s.exited).toBe(0);
      expect(s.out().trim()).toBe(version);
    }
  });

  it('--help describes the rendezvous and expose options in their own groups', async () => {
    const s = start(['--help']);
    expect(await s.exited).toBe(0);
    const help = s.out();
    for (const group of ['STUN options:', 'TURN relay options', 'Rendezvous options', 'Expose options', 'General options:']) expect(help).toContain(group);
    const section = (name: string): string => help.slice(help.indexOf(name), help.indexOf('\n\n', help.indexOf(name)));
    expect(section('Rendezvous options')).toMatch(/--rendezvous-port <port>[\s\S]*--rendezvous-host[\s\S]*--rendezvous-ice-url/);
    expect(section('Expose options')).toMatch(/--expose-ports <range>[\s\S]*--expose-public-ip/);
    expect(section('TURN relay options')).toMatch(/--strict-channel-range\s+accept only RFC 8656 channel numbers\s+0x4000-0x4FFF/);
    expect(section('General options')).toMatch(/-V, --version/);
    expect(help).toMatch(/--rendezvous-port 8080 --expose-ports/); // an example
    expect(help).not.toMatch(/--legacy-channel-numbers/); // deprecated, hidden
  });

  it('an unknown option exits 2, suggests the near one and points at --help', async () => {
    const s = start(['--listen', '127.0.0.1', '--realmm', 'x']);
    expect(await s.exited).toBe(2);
    expect(s.err()).toBe("nat-server: unknown option '--realmm' (Did you mean --realm?); nat-server --help lists the options\n");
  });
});

describe('a rendezvous that can hand out no TURN relay', () => {
  const rendezvous = ['--listen', '127.0.0.1', '--port', '0', '--no-alt-port', '--rendezvous-port', '0', '--log-level', 'silent'];
  async function warningOf(args: string[]): Promise<string> {
    const s = start([...rendezvous, ...args]);
    try {
      expect(await until(() => /rendezvous ws:\/\/\S+\n/.test(s.err())), s.err()).toBe(true);
      await new Promise((r) => setTimeout(r, 200)); // a warning would follow at once
    } finally {
      s.child.kill('SIGTERM');
    }
    expect(await s.exited).toBe(0);
    expect(s.out()).not.toContain('warning');
    return s.err();
  }

  it('static users only: warns on stderr that no relay will be offered and names --auth-secret, printing no secret', async () => {
    const err = await warningOf(['--realm', 'rv.test', '--user', 'alice:PASSW0RD']);
    expect(err).toMatch(/warning: the rendezvous service will offer peers no TURN relay: .*no --auth-secret was given.*start with --auth-secret SECRET/);
    expect(err).not.toContain('PASSW0RD');
  });

  it('no TURN at all: warns and names --realm and --auth-secret', async () => {
    expect(await warningOf([])).toMatch(
      /warning: the rendezvous service will offer peers no TURN relay: TURN is off \(no --realm\).*start with --realm REALM --auth-secret SECRET/,
    );
  });

  it('with --auth-secret: no warning, and the secret is not printed', async () => {
    const err = await warningOf(['--realm', 'rv.test', '--auth-secret', 'T0PSECRET', '--user', 'alice:pw']);
    expect(err).not.toMatch(/warning/);
    expect(err).not.toContain('T0PSECRET');
  });
});

describe('a reader that goes away', () => {
  it('nat-server --help into a closed pipe (as `nat-server --help | head -1`) exits 0 without an EPIPE crash', async () => {
    const s = start(['--help']);
    s.child.stdout.destroy();
    const code = await s.exited;
    expect({ code, err: s.err() }).toEqual({ code: 0, err: '' });
  });
});
