/**
 * `nat connect NAME@PEER_ID` (issue 14, finding 9c): with a bare NAME, nat connect trusts the
 * rendezvous for which key owns the name; with a pin it refuses an answer naming another key
 * before connecting anywhere.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runCli } from '@nat/cli';
import { RendezvousClient, generateIdentity, peerIdOf } from '@nat/client';
import { type RendezvousServer, startRendezvous } from '@nat/server';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { capture } from '../tunnel/helpers.js';

const host = '127.0.14.33';
let rv: RendezvousServer;
let dir: string;
beforeAll(async () => {
  rv = await startRendezvous({ host, port: 0 });
  dir = await mkdtemp(join(tmpdir(), 'nat-name-pin-'));
});
afterAll(async () => {
  await rv?.close();
  await rm(dir, { recursive: true, force: true });
});

it('finding 9c: nat connect NAME@PEER_ID refuses a name the rendezvous resolves to another key, and connects to the pinned owner', async () => {
  const owner = await RendezvousClient.connect({ url: rv.url, identity: generateIdentity() });
  try {
    await owner.claimName('pinned-svc');
    const someoneElse = peerIdOf(generateIdentity());
    const base = ['--listen', `${host}:0`, '--rendezvous', rv.url, '--identity', join(dir, 'connect.pem'), '--no-punch', '--host-address', host];

    const wrong = capture();
    expect(await runCli(['connect', `pinned-svc@${someoneElse}`, ...base], wrong.io)).toBe(1);
    expect(wrong.err()).toContain(`the name pinned-svc belongs to peer ${owner.id}, not to the pinned peer ${someoneElse}; not connecting`);
    expect(wrong.out()).toBe(''); // no local port was opened

    const bad = capture();
    expect(await runCli(['connect', 'pinned-svc@not-a-peer-id', ...base], bad.io)).toBe(2);
    expect(bad.err()).toMatch(/after the @ comes the peer id/);

    // the right pin: it listens for the owner's service (the owner here never answers; stop it then)
    const right = capture();
    const stop = new AbortController();
    const done = runCli(['connect', `pinned-svc@${owner.id}`, ...base, '--json'], right.io, stop.signal);
    const listening = await right.waitFor((l) => l.event === 'listening');
    expect(listening.peer).toBe(owner.id);
    expect(listening.service).toBe('pinned-svc');
    stop.abort();
    await done;
  } finally {
    await owner.close();
  }
}, 60_000);
