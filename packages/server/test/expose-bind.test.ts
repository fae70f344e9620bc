/** Binding an expose public port: the operating system's refusal is kept and told apart in the refusal sent to the client. */
import { type AddressInfo, createServer } from 'node:net';
import { describe, expect, it } from 'vitest';
import { bindPublicPort, bindRefusal } from '../src/expose/bind.js';

describe('expose public port binding', () => {
  it('reports EADDRINUSE for a TCP port another program holds, and binds a free one', async () => {
    const squatter = createServer();
    await new Promise<void>((r) => squatter.listen(0, '127.0.0.1', r));
    const port = (squatter.address() as AddressInfo).port;
    try {
      const held = await bindPublicPort('tcp', '127.0.0.1', port);
      expect(held).toEqual({ error: 'EADDRINUSE' });
    } finally {
      squatter.close();
    }
    const free = await bindPublicPort('tcp', '127.0.0.1', 0);
    expect(free.error).toBeUndefined();
    free.tcp!.close();
  });

  it('turns errno codes into distinct refusals that say what was observed', () => {
    expect(bindRefusal('tcp', 15441, 'EADDRINUSE')).toEqual({
      code: 'port-in-use',
      message: 'tcp port 15441 is in use on the server by another program (not a nat user)',
    });
    expect(bindRefusal('udp', 80, 'EACCES')).toEqual({
      code: 'port-denied',
      message: 'the server is not allowed to bind udp port 80 (EACCES: ports below 1024 need privileges)',
    });
    expect(bindRefusal('tcp', 20000, 'EPERM').code).toBe('port-denied');
    expect(bindRefusal('tcp', 20000, 'EADDRNOTAVAIL')).toEqual({ code: 'unavailable', message: 'the server could not bind tcp port 20000 (EADDRNOTAVAIL)' });
  });
});
