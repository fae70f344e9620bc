import { readFile } from 'node:fs/promises';
import { ipFamily } from '@nat/protocol';
import type { StunServerInit } from '@nat/server';
import { parse as parseYaml } from 'yaml';
import { z } from 'zod';

const ip = z.string().refine((s) => ipFamily(s) !== undefined, { message: 'not an IP address' });
const port = z.number().int().min(0).max(65535);

/** The configuration file (YAML or JSON) of `nat-server`; flags override it key by key. */
export const ServerConfig = z
  .object({
    /** Primary IP addresses, at most one per family. */
    listen: z.array(ip).min(1).max(2),
    /** Alternate IP addresses for RFC 5780 (one per family). */
    alternate: z.array(ip).max(2).default([]),
    port: port.default(3478),
    /** null disables the alternate port. */
    altPort: port.nullable().default(3479),
    tcp: z.boolean().default(true),
    tlsPort: port.optional(),
    tlsCert: z.string().min(1).optional(),
    tlsKey: z.string().min(1).optional(),
    software: z.string().max(127).optional(),
    rateLimit: z
      .object({ perSecond: z.number().min(0), burst: z.number().min(1).optional() })
      .strict()
      .default({ perSecond: 500, burst: 1000 }),
    logLevel: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
  })
  .strict()
  .refine((c) => (c.tlsCert === undefined) === (c.tlsKey === undefined), { message: 'tlsCert and tlsKey go together', path: ['tlsCert'] });

export type ServerConfig = z.infer<typeof ServerConfig>;

/** A configuration that cannot be used; the message names the bad key. Exit code 2. */
export class ConfigError extends Error {
  override readonly name = 'ConfigError';
}

/** `listen.0: not an IP address; port: Too big: expected number to be <=65535` */
export function formatZodError(error: z.ZodError): string {
  return error.issues.map((i) => `${i.path.length ? i.path.join('.') : '(top level)'}: ${i.message}`).join('; ');
}

/** Reads a YAML or JSON file (JSON is YAML) into a plain object. */
export async function readConfigFile(path: string): Promise<Record<string, unknown>> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (e) {
    throw new ConfigError(`cannot read config file ${path}: ${(e as Error).message}`);
  }
  let value: unknown;
  try {
    value = parseYaml(text);
  } catch (e) {
    throw new ConfigError(`config file ${path} is not valid YAML or JSON: ${(e as Error).message}`);
  }
  if (value === null || value === undefined) return {};
  if (typeof value !== 'object' || Array.isArray(value)) throw new ConfigError(`config file ${path}: the top level must be a mapping of keys`);
  return value as Record<string, unknown>;
}

/** Merges file values and flag values (flags win) and validates the result. */
export function resolveConfig(fromFile: Record<string, unknown>, fromFlags: Record<string, unknown>, source: string): ServerConfig {
  const merged: Record<string, unknown> = { ...fromFile };
  for (const [k, v] of Object.entries(fromFlags)) if (v !== undefined) merged[k] = v;
  const result = ServerConfig.safeParse(merged);
  if (!result.success) throw new ConfigError(`invalid configuration (${source}): ${formatZodError(result.error)}`);
  return result.data;
}

/** The library options a configuration stands for. */
export function toStunServerInit(c: ServerConfig): StunServerInit {
  return {
    listen: c.listen,
    alternate: c.alternate,
    port: c.port,
    altPort: c.altPort,
    tcp: c.tcp,
    tlsPort: c.tlsPort,
    tls: c.tlsCert && c.tlsKey ? { certFile: c.tlsCert, keyFile: c.tlsKey } : undefined,
    software: c.software,
    rateLimit: c.rateLimit,
  };
}
