import { describe, expect, it } from 'vitest';
import { start } from './helpers.js';

describe('nat-server --workers usage', () => {
  it('refuses a worker count outside 1-64 with exit 2, naming the flag', async () => {
    for (const v of ['0', '65', 'many']) {
      const s = start(['--listen', '127.0.0.1', '--workers', v]);
      expect(await s.exited).toBe(2);
      expect(s.err()).toContain(`option '--workers <n>' argument '${v}' is invalid. expected auto or a whole number 1-64`);
    }
  }, 60_000);

  it('refuses several workers when the TLS port carries the rendezvous too, naming --workers 1', async () => {
    const s = start(['--listen', '127.0.0.1', '--port', '0', '--workers', '2', '--tls-port', '0', '--rendezvous-port', '0']);
    expect(await s.exited).toBe(2);
    expect(s.err()).toContain('--workers 2 with --tls-port and --rendezvous-port: the TLS port serves the rendezvous too');
    expect(s.err()).toContain('use --workers 1');
  }, 30_000);

  it('lists the option in --help', async () => {
    const s = start(['--help']);
    expect(await s.exited).toBe(0);
    expect(s.out()).toMatch(/--workers <n>\s+worker processes, 1-64, or auto: one per core, but one on a loopback-only server/);
  }, 30_000);
});
