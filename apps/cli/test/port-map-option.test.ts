import { PassThrough } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { runCli } from '../src/index.js';

function capture() {
  const stdout = new PassThrough();
  const stderr = new PassThrough();
  let out = '';
  let err = '';
  stdout.on('data', (c) => (out += String(c)));
  stderr.on('data', (c) => (err += String(c)));
  return { io: { stdout, stderr }, out: () => out, err: () => err };
}

// The mapping itself is tested against miniupnpd in tests/portmap/ice-mapped.test.ts.
describe('--port-map of nat ping and nat listen', () => {
  it.each([
    ['ping', 'a'.repeat(32)],
    ['listen', undefined],
  ])('nat %s: a gateway that is not an IPv4 address is a usage error (exit 2) before any traffic', async (command, peer) => {
    const c = capture();
    // Port 9 of loopback: were the rendezvous tried first, the exit code would be 3.
    const args = [command, ...(peer === undefined ? [] : [peer]), '--rendezvous', 'ws://127.0.0.1:9/', '--port-map', 'router.lan'];
    const code = await runCli(args, c.io);
    expect(c.err()).toMatch(/--port-map: "router\.lan" is not an IPv4 address/);
    expect(code).toBe(2);
  });

  it.each(['ping', 'listen'])('nat %s --help says the option is opt-in and touches the real router', async (command) => {
    const c = capture();
    expect(await runCli([command, '--help'], c.io)).toBe(0);
    const help = c.out().replace(/\s+/g, ' ');
    expect(help).toContain('--port-map [gateway]');
    expect(help).toMatch(/off by default because it opens ports on your real router/);
  });
});
