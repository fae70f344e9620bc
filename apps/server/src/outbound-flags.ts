import type { Command } from 'commander';

/**
 * The flag of outbound connections for exposed users (config key `exposeOutbound`; its limits
 * are config keys only: exposeOutboundPerSession, exposeOutboundPerMinute, exposeOutboundTotal,
 * exposeOutboundTimeout).
 */
export interface OutboundFlags {
  exposeOutbound?: boolean;
}

/** Adds `--expose-outbound` (to the expose options group). */
export function withOutboundOptions(program: Command): Command {
  return program.option(
    '--expose-outbound',
    "let exposed users open TCP connections from the public ports' address (nat expose --public --outbound-socks), toward what --allow-peer/--deny-peer allow (default off)",
  );
}

/** The flag's value under its config key (undefined: not given). */
export function outboundFlagValues(o: OutboundFlags): { exposeOutbound: boolean | undefined } {
  return { exposeOutbound: o.exposeOutbound };
}
