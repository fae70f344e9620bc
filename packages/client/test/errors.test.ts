// Every error of @nat/client is a NatClientError with a code; the per-layer subclasses keep
// their names, codes, fields and instanceof behaviour (apps/cli tells them apart by these).
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  IceConnectError,
  IceError,
  IdentityFileError,
  NatClientError,
  PeerLinkError,
  PortMapError,
  RendezvousError,
  StunClientError,
  connectionDiagnosis,
  isPortMapError,
  isStunClientError,
  loadOrCreateIdentity,
  stunBinding,
} from '../src/index.js';

describe('the client error hierarchy', () => {
  it('has one base class with a code, and subclasses that keep their names, codes and fields', () => {
    const cause = new Error('underneath');
    const stun = new StunClientError('ERROR_RESPONSE', 'error response 401', { cause, stunErrorCode: 401, reason: 'Unauthorized' });
    const link = new PeerLinkError('TAMPERED', 'stream altered', { cause });
    const map = new PortMapError('REFUSED', 'NAT-PMP result 2', { resultCode: 2 });
    const file = new IdentityFileError('INVALID', '/nowhere/identity.pem', 'not a key', { cause });
    const diagnosis = {} as ConstructorParameters<typeof IceConnectError>[2];
    const socket = new IceConnectError('SOCKET', 'ICE connect: send failed', diagnosis);
    const ice = new IceError('all-pairs-failed', 'ICE failed: all-pairs-failed', { diagnosis });
    const rv = new RendezvousError('peer-offline', 'peer x: peer-offline: not connected');
    for (const e of [stun, link, map, file, socket, ice, rv]) {
      expect(e).toBeInstanceOf(NatClientError);
      expect(e).toBeInstanceOf(Error);
      expect(typeof e.code).toBe('string');
    }
    expect([stun, link, map, file, socket, ice, rv].map((e) => [e.name, e.code])).toEqual([
      ['StunClientError', 'ERROR_RESPONSE'],
      ['PeerLinkError', 'TAMPERED'],
      ['PortMapError', 'REFUSED'],
      ['IdentityFileError', 'INVALID'],
      ['IceConnectError', 'SOCKET'],
      ['IceError', 'all-pairs-failed'],
      ['RendezvousError', 'peer-offline'],
    ]);
    expect(stun).toMatchObject({ stunErrorCode: 401, reason: 'Unauthorized', message: 'error response 401', cause });
    expect(link.cause).toBe(cause);
    expect(map.resultCode).toBe(2);
    expect(map.cause).toBeUndefined();
    expect(file).toMatchObject({ path: '/nowhere/identity.pem', cause });
    expect(socket).toBeInstanceOf(StunClientError);
    expect(connectionDiagnosis(socket)).toBe(diagnosis);
    expect(connectionDiagnosis(ice)).toBe(diagnosis);
    expect(connectionDiagnosis(rv)).toBeUndefined();
    // the layers stay apart
    expect(link).not.toBeInstanceOf(StunClientError);
    expect(map).not.toBeInstanceOf(PeerLinkError);
    expect(ice).not.toBeInstanceOf(StunClientError);
    expect(rv).not.toBeInstanceOf(StunClientError);
    expect(isStunClientError(socket, 'SOCKET')).toBe(true);
    expect(isPortMapError(map, 'REFUSED')).toBe(true);
    expect(isStunClientError(map)).toBe(false);
  });

  it('is what real failures throw: an unreadable identity file, a STUN request aborted', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'nat-errors-'));
    try {
      const path = join(dir, 'identity.pem');
      await writeFile(path, 'not a PEM key\n');
      const failure = await loadOrCreateIdentity(path).catch((e: unknown) => e);
      expect(failure).toBeInstanceOf(IdentityFileError);
      expect(failure).toBeInstanceOf(NatClientError);
      expect(failure).toMatchObject({ name: 'IdentityFileError', code: 'INVALID', path });
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
    const aborted = await stunBinding('127.0.15.62:3478', { signal: AbortSignal.abort() }).catch((e: unknown) => e);
    expect(aborted).toBeInstanceOf(StunClientError);
    expect(aborted).toBeInstanceOf(NatClientError);
    expect(aborted).toMatchObject({ name: 'StunClientError', code: 'ABORTED' });
  });
});
