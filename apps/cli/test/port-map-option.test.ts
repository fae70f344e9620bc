import { describe, expect, it } from 'vitest';
import { runCli } from '../src/index.js';
import { capture } from './capture.js';

// The mapping itself is tested against miniupnpd in tests/portmap/ice-mapped.test.ts (ping,
// listen) and tests/portmap/tunnel-mapped.test.ts (expose, connect).
describe('--port-map of nat ping, listen, expose and connect', () => {
  it.each([
    ['ping', ['a'.repeat(32)]],
    ['listen', []],
    ['expose', ['127.0.0.1:15441', '--name', 'svc', '--allow-any']],
    ['connect', ['svc', '--listen', '127.0.0.1:0']],
  ])('nat %s: a gateway that is not an IPv4 address is a usage error (exit 2) before any traffic', async (command, operands) => {
    const c = capture();
    // Port 9 of loopback: were the rendezvous tried first, the exit code would be 3.
    const args = [command, ...operands, '--rendezvous', 'ws://127.0.0.1:9/', '--port-map', 'router.lan'];
    const code = await runCli(args, c.io);
    expect(c.err()).toMatch(/--port-map: "router\.lan" is not an IPv4 address/);
    expect(code).toBe(2);
  });

  it('nat expose --public --port-map is a usage error: a public port needs no peer link', async () => {
    const c = capture();
    const code = await runCli(['expose', '127.0.0.1:15441', '--public', '--rendezvous', 'ws://127.0.0.1:9/', '--user', 'a:b', '--port-map'], c.io);
    expect(c.err()).toMatch(/--port-map maps the ports of peer links/);
    expect(code).toBe(2);
  });

  it.each(['ping', 'listen', 'expose', 'connect'])('nat %s --help says the option is opt-in and touches the real router', async (command) => {
    const c = capture();
    expect(await runCli([command, '--help'], c.io)).toBe(0);
    const help = c.out().replace(/\s+/g, ' ');
    expect(help).toContain('--port-map [gateway]');
    expect(help).toMatch(/off by default because it opens ports on your real router/);
  });
});
