/**
 * The service unit (apps/server/systemd/nat-server.service), checked by systemd's own tools:
 * `systemd-analyze verify` finds no error, `systemd-analyze security --offline` rates its
 * exposure OK (hardened: a dynamic user, only the capability to bind low ports, a read-only
 * system), and the commands it runs work with a config as the README installs it.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { bin } from './helpers.js';

const unitPath = fileURLToPath(new URL('../systemd/nat-server.service', import.meta.url));
const unit = readFileSync(unitPath, 'utf8');
const dir = mkdtempSync(join(tmpdir(), 'nat-server-unit-'));
const config = join(dir, 'config.yaml');
writeFileSync(config, 'listen: 127.0.0.1\nrealm: example.org\nauthSecrets: [change-me]\n');
// The installed binary and config path stand in for /usr/local/bin and /etc here.
const local = unit.replaceAll('/usr/local/bin/nat-server', `${process.execPath} ${bin}`).replaceAll('/etc/nat-server/config.yaml', config);
const localPath = join(dir, 'nat-server.service');
writeFileSync(localPath, local);

const run = (cmd: string, args: string[]) => spawnSync(cmd, args, { encoding: 'utf8', timeout: 60_000 });

describe('the systemd unit', () => {
  it('passes systemd-analyze verify without a warning', () => {
    const r = run('systemd-analyze', ['verify', '--man=no', localPath]);
    expect(r.status, r.stderr).toBe(0);
    expect(r.stderr.trim()).toBe('');
  });

  it('is hardened: systemd-analyze security rates its exposure at most 2.0 (OK)', () => {
    const r = run('systemd-analyze', ['security', '--offline=yes', '--no-pager', localPath]);
    const m = /Overall exposure level for nat-server\.service: (\d+\.\d+) (\w+)/.exec(r.stdout + r.stderr);
    expect(m, r.stdout + r.stderr).not.toBeNull();
    expect(Number(m![1])).toBeLessThanOrEqual(2.0);
    expect(m![2]).toBe('OK');
    for (const key of ['DynamicUser=yes', 'CapabilityBoundingSet=CAP_NET_BIND_SERVICE', 'ProtectSystem=strict', 'NoNewPrivileges=yes'])
      expect(unit).toContain(key);
  });

  it('its ExecStartPre (--check-config) accepts the config it names', () => {
    const pre = /^ExecStartPre=(.*)$/m.exec(local)![1]!.split(' ');
    const r = run(pre[0]!, pre.slice(1));
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toContain(`${config}: valid`);
  });
});
