/**
 * `nat map` usage and state-file handling that need no router (the mapping itself is tested
 * against miniupnpd in tests/portmap); `nat detect` skipping the router for a loopback server.
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { defaultStateFile } from '../src/commands/map.js';
import { runCli } from '../src/index.js';
import { capture } from './capture.js';

describe('nat map', () => {
  it('bad ports, protocols, methods and gateways are usage errors (exit 2)', async () => {
    for (const argv of [
      ['map', 'add', '0'],
      ['map', 'add', '70000'],
      ['map', 'add', '7000', '--protocol', 'sctp'],
      ['map', 'add', '7000', '--method', 'igd'],
      ['map', 'add', '7000', '--gateway', 'router.local'],
      ['map', 'remove'],
    ]) {
      const c = capture();
      expect(await runCli(argv, c.io), argv.join(' ')).toBe(2);
      expect(c.err()).toMatch(/nat: /);
    }
  });

  it('remove says so when no mapping of the port is held (exit 1)', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'natmap-'));
    const state = join(dir, 'portmap.json');
    writeFileSync(state, JSON.stringify({ version: 1, mappings: [] }));
    const c = capture();
    expect(await runCli(['map', 'remove', '7000', '--state', state], c.io)).toBe(1);
    expect(c.err()).toContain('no mapping of port 7000');
  });

  it('keeps its state under XDG_STATE_HOME (absolute) or ~/.local/state', () => {
    expect(defaultStateFile({ XDG_STATE_HOME: '/var/state' })).toBe('/var/state/nat/portmap.json');
    expect(defaultStateFile({ XDG_STATE_HOME: 'relative' })).toMatch(/\.local\/state\/nat\/portmap\.json$/);
  });
});
