import { mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import type { MappingGrant } from './types.js';

/** One mapping remembered on disk, with the process that holds it. */
export interface StoredMapping {
  readonly pid: number;
  readonly grant: MappingGrant;
  /** The requested lifetime, for removal bookkeeping. */
  readonly createdAt: number;
}

/**
 * The state file: the mappings live processes hold, so that a restart after a crash removes
 * what the crashed run left on the router. JSON, rewritten atomically (write + rename).
 */
export class MappingStateFile {
  constructor(readonly path: string) {}

  read(): StoredMapping[] {
    try {
      const data = JSON.parse(readFileSync(this.path, 'utf8')) as { mappings?: unknown };
      return Array.isArray(data.mappings) ? (data.mappings as StoredMapping[]).filter((m) => m && typeof m.pid === 'number' && m.grant) : [];
    } catch {
      return [];
    }
  }

  write(mappings: readonly StoredMapping[]): void {
    mkdirSync(dirname(this.path), { recursive: true });
    const tmp = `${this.path}.${process.pid}.tmp`;
    writeFileSync(tmp, `${JSON.stringify({ version: 1, mappings }, null, 2)}\n`, { mode: 0o600 });
    renameSync(tmp, this.path);
  }

  add(m: StoredMapping): void {
    this.write([...this.read().filter((x) => !sameMapping(x.grant, m.grant)), m]);
  }

  remove(grant: MappingGrant): void {
    this.write(this.read().filter((x) => !sameMapping(x.grant, grant)));
  }
}

/** Same router, protocol and external port: the same mapping. */
export function sameMapping(a: MappingGrant, b: MappingGrant): boolean {
  return a.gateway === b.gateway && a.protocol === b.protocol && a.externalPort === b.externalPort && a.internalPort === b.internalPort;
}

/** True while process `pid` exists. */
export function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}
