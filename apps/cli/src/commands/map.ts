import { homedir } from 'node:os';
import { isAbsolute, join } from 'node:path';
import {
  MappingStateFile,
  PortMapError,
  PortMapper,
  processAlive,
  type MappingGrant,
  type PortMapEvent,
  type PortMapMethod,
  type PortMapProbe,
} from '@nat/client';
import { ExitCode, UsageError } from '../exit-codes.js';
import type { Io } from '../io.js';

/** Options shared by the `nat map` subcommands. */
export interface MapCommonOptions {
  readonly gateway?: string;
  readonly state?: string;
  readonly json?: boolean;
}

/** Options of `nat map add`. */
export interface MapAddOptions extends MapCommonOptions {
  readonly protocol: 'udp' | 'tcp';
  readonly external?: number;
  readonly lifetime?: number;
  readonly method?: PortMapMethod;
  readonly exact?: boolean;
  readonly description?: string;
}

/** Options of `nat map remove`. */
export interface MapRemoveOptions extends MapCommonOptions {
  readonly protocol?: 'udp' | 'tcp';
}

/**
 * Where mappings are remembered by default: `$XDG_STATE_HOME/nat/portmap.json` when
 * XDG_STATE_HOME is an absolute path, else `~/.local/state/nat/portmap.json`.
 */
export function defaultStateFile(env: NodeJS.ProcessEnv = process.env): string {
  const xdg = env['XDG_STATE_HOME'];
  return join(xdg !== undefined && xdg !== '' && isAbsolute(xdg) ? xdg : join(homedir(), '.local', 'state'), 'nat', 'portmap.json');
}

/** A grant as JSON (the documented keys of `nat map --json`). */
export function grantJson(g: MappingGrant): Record<string, unknown> {
  return {
    method: g.method,
    gateway: g.gateway,
    protocol: g.protocol,
    internalAddress: g.internalAddress,
    internalPort: g.internalPort,
    externalAddress: g.externalAddress ?? null,
    externalPort: g.externalPort,
    lifetime: g.lifetime,
  };
}

/** The probe as JSON: one object per method. */
export function probeJson(p: PortMapProbe): Record<string, unknown>[] {
  return p.methods.map((m) => ({
    method: m.method,
    available: m.available,
    externalAddress: m.externalAddress ?? null,
    error: m.error?.message ?? null,
    durationMs: Math.round(m.durationMs),
    ...(m.upnp ? { upnp: m.upnp } : {}),
  }));
}

const NAMES: Record<PortMapMethod, string> = { pcp: 'PCP', natpmp: 'NAT-PMP', upnp: 'UPnP IGD' };

/** One line per method, as a person reads it. */
export function renderProbe(p: PortMapProbe): string[] {
  return p.methods.map((m) => {
    const name = NAMES[m.method].padEnd(8);
    if (!m.available) return `${name}  no (${m.error?.message ?? 'no answer'})`;
    const extra = m.upnp ? `, ${m.upnp.serviceType.replace('urn:schemas-upnp-org:service:', '')}${m.upnp.firewall ? ', IPv6 pinholes' : ''}` : '';
    return `${name}  yes, external address ${m.externalAddress ?? '?'}${extra}`;
  });
}

const describe = (g: MappingGrant): string =>
  `${g.protocol.toUpperCase()} ${g.externalAddress ?? '?'}:${g.externalPort} -> ${g.internalAddress}:${g.internalPort} via ${NAMES[g.method]}`;

/** `nat map add`: maps, renews until `signal` (Ctrl-C) or SIGTERM, then removes. */
export async function mapAddCommand(port: number, o: MapAddOptions, io: Io, signal: AbortSignal): Promise<number> {
  const stop = new AbortController();
  const onTerm = (): void => stop.abort();
  process.once('SIGTERM', onTerm);
  const ended = AbortSignal.any([signal, stop.signal]);
  const line = (e: Record<string, unknown>, text: string): void => {
    if (o.json) io.stdout.write(`${JSON.stringify(e)}\n`);
    else io.stderr.write(`${text}\n`);
  };
  const onEvent = (e: PortMapEvent): void => {
    if (e.type === 'mapped') return; // printed below with the probe
    const base = { event: e.type, ...grantJson(e.grant) };
    if (e.type === 'restored')
      line({ ...base, reason: e.reason }, `restored ${describe(e.grant)} (${e.reason === 'epoch-reset' ? 'the router restarted: epoch reset' : e.reason})`);
    else if (e.type === 'error') line({ ...base, error: e.error.message }, `renewal failed: ${e.error.message}; retrying`);
    else if (e.type === 'stale-removed')
      line(
        { ...base, error: e.error?.message ?? null },
        `removed a mapping a previous run left: ${describe(e.grant)}${e.error ? ` (${e.error.message})` : ''}`,
      );
    else line(base, `${e.type} ${describe(e.grant)}${e.type === 'renewed' ? ` for ${e.grant.lifetime} s` : ''}`);
  };
  let mapper: PortMapper;
  try {
    mapper = await PortMapper.create({
      ...(o.gateway ? { gateway: o.gateway } : {}),
      ...(o.method ? { methods: [o.method] } : {}),
      stateFile: o.state ?? defaultStateFile(),
      onEvent,
    });
  } catch (e) {
    process.off('SIGTERM', onTerm);
    // No router to ask, as for `nat map list`: nothing answered (exit 3), not bad usage.
    if (!(e instanceof PortMapError && e.code === 'NO_GATEWAY')) throw e;
    if (o.gateway !== undefined) throw new UsageError(`--gateway: ${e.message}`);
    if (o.json) io.stdout.write(`${JSON.stringify({ event: 'failed', error: e.message, code: e.code, methods: [] })}\n`);
    io.stderr.write(`nat: could not map port ${port}: ${e.message} (--gateway IP names the router)\n`);
    return ExitCode.NoAnswer;
  }
  try {
    await mapper.removeStale();
    const probe = await mapper.probe();
    if (!o.json) for (const l of renderProbe(probe)) io.stderr.write(`${l}\n`);
    let mapping;
    try {
      mapping = await mapper.map({
        protocol: o.protocol,
        internalPort: port,
        ...(o.external !== undefined ? { externalPort: o.external } : {}),
        ...(o.lifetime !== undefined ? { lifetime: o.lifetime } : {}),
        ...(o.exact ? { exactPort: true } : {}),
        ...(o.description ? { description: o.description } : {}),
      });
    } catch (e) {
      const err = e instanceof PortMapError ? e : undefined;
      const noAnswer = probe.methods.every((m) => !m.available && (m.error?.code === 'TIMEOUT' || m.error?.code === 'UNSUPPORTED'));
      if (o.json)
        io.stdout.write(`${JSON.stringify({ event: 'failed', error: err?.message ?? String(e), code: err?.code ?? null, methods: probeJson(probe) })}\n`);
      else io.stderr.write(`nat: could not map port ${port}: ${err?.message ?? String(e)}\n`);
      return noAnswer ? ExitCode.NoAnswer : ExitCode.Failure;
    }
    const g = mapping.grant;
    const wanted = o.external ?? port;
    if (o.json) io.stdout.write(`${JSON.stringify({ event: 'mapped', ...grantJson(g), requestedExternalPort: wanted, methods: probeJson(probe) })}\n`);
    else {
      io.stdout.write(`${g.externalAddress ?? '?'}:${g.externalPort}\n`);
      io.stderr.write(`mapped ${describe(g)} for ${g.lifetime} s${g.externalPort !== wanted ? ` (port ${wanted} was taken)` : ''}; renewing until Ctrl-C\n`);
    }
    await new Promise<void>((resolve) => {
      if (ended.aborted) return resolve();
      ended.addEventListener('abort', () => resolve(), { once: true });
    });
    return ExitCode.Ok;
  } finally {
    process.off('SIGTERM', onTerm);
    await mapper.close().catch((e: unknown) => io.stderr.write(`nat: removing the mapping failed: ${e instanceof Error ? e.message : String(e)}\n`));
  }
}

/** `nat map list`: what the router offers and the mappings this host's `nat map add` runs hold. */
export async function mapListCommand(o: MapCommonOptions, io: Io): Promise<number> {
  const state = new MappingStateFile(o.state ?? defaultStateFile());
  const stored = state.read();
  const held = stored.map((m) => ({ ...grantJson(m.grant), pid: m.pid, alive: processAlive(m.pid) }));
  let probe: PortMapProbe | undefined;
  try {
    const mapper = await PortMapper.create(o.gateway ? { gateway: o.gateway } : {});
    probe = await mapper.probe();
    await mapper.close();
  } catch (e) {
    if (!(e instanceof PortMapError && e.code === 'NO_GATEWAY')) throw e;
    if (o.gateway !== undefined) throw new UsageError(`--gateway: ${e.message}`);
  }
  if (o.json) {
    io.stdout.write(`${JSON.stringify({ gateway: probe?.gateway ?? null, methods: probe ? probeJson(probe) : [], mappings: held }, null, 2)}\n`);
  } else {
    io.stdout.write(probe ? `Gateway ${probe.gateway}\n${renderProbe(probe).join('\n')}\n` : 'No default gateway.\n');
    io.stdout.write(
      held.length === 0
        ? 'No mappings held.\n'
        : `Mappings:\n${stored.map((m) => `  ${describe(m.grant)} (pid ${m.pid}${processAlive(m.pid) ? '' : ', not running: removed at the next `nat map add`'})`).join('\n')}\n`,
    );
  }
  return probe?.methods.some((m) => m.available) ? ExitCode.Ok : ExitCode.NoAnswer;
}

/**
 * `nat map remove PORT`: stops the `nat map add` holding PORT (internal or external), which
 * removes its mapping; a mapping whose holder is gone is removed here.
 */
export async function mapRemoveCommand(port: number, o: MapRemoveOptions, io: Io): Promise<number> {
  const state = new MappingStateFile(o.state ?? defaultStateFile());
  const matches = state
    .read()
    .filter((m) => (m.grant.internalPort === port || m.grant.externalPort === port) && (o.protocol === undefined || m.grant.protocol === o.protocol));
  if (matches.length === 0) {
    io.stderr.write(`nat: no mapping of port ${port} is held by this host (see nat map list)\n`);
    return ExitCode.Failure;
  }
  const removed: Record<string, unknown>[] = [];
  for (const m of matches) {
    if (m.pid !== process.pid && processAlive(m.pid)) {
      process.kill(m.pid, 'SIGTERM');
      const deadline = Date.now() + 10_000;
      while (processAlive(m.pid) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
    }
  }
  // Whatever is still recorded now belongs to no process: remove it on the router.
  const mapper = await PortMapper.create({
    gateway: matches[0]!.grant.gateway,
    stateFile: state.path,
    onEvent: (e) => {
      if (e.type === 'stale-removed' && e.error) io.stderr.write(`nat: ${e.error.message}\n`);
    },
  });
  await mapper.removeStale();
  await mapper.close();
  for (const m of matches) removed.push(grantJson(m.grant));
  if (o.json) io.stdout.write(`${JSON.stringify({ removed }, null, 2)}\n`);
  else
    for (const { grant: g } of matches)
      io.stdout.write(`removed ${g.protocol.toUpperCase()} ${g.externalAddress ?? '?'}:${g.externalPort} -> ${g.internalAddress}:${g.internalPort}\n`);
  return ExitCode.Ok;
}
