/** `--proxy-protocol-from`: the load balancers whose connections start with a PROXY header (config key proxyProtocolFrom). */
import type { Command } from 'commander';

/** The flag's value as commander gives it. */
export interface ProxyProtocolFlags {
  proxyProtocolFrom?: string[];
}

/** Adds `--proxy-protocol-from` (repeatable, or comma-separated) in its own group. */
export function withProxyProtocolOption(program: Command): Command {
  return program
    .optionsGroup('Load balancer options (PROXY protocol):')
    .option(
      '--proxy-protocol-from <cidr[,cidr]>',
      'TCP/TLS connections from these load balancers must start with a PROXY protocol v2 or v1 header; its client address is used (repeatable)',
      (value: string, previous: string[] = []) => [...previous, value],
    );
}

/** `--proxy-protocol-from` values (comma-separated or repeated) under their config key. */
export function proxyProtocolFromFlag(values: readonly string[] | undefined): { proxyProtocolFrom?: string[] } {
  return values === undefined ? {} : { proxyProtocolFrom: values.flatMap((v) => v.split(',')).map((v) => v.trim()) };
}
