import { createServer } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RedisUnavailableError, connectRedis, redactRedisUrl } from '@nat/redis';
import { type RedisServer, startRedis } from './redis.js';

describe('connectRedis', () => {
  let redis: RedisServer;
  beforeAll(async () => {
    redis = await startRedis();
  });
  afterAll(async () => {
    await redis?.stop();
  });

  it('connects to a real redis-server and runs commands', async () => {
    const r = await connectRedis(redis.url, { name: 'nat-test' });
    try {
      await r.set('nat:test', '1');
      expect(await r.get('nat:test')).toBe('1');
      expect(await redis.command('CLIENT', 'LIST')).toContain('name=nat-test');
    } finally {
      r.disconnect();
    }
  });

  it('names the address and the flag when nothing answers', async () => {
    const port = await new Promise<number>((resolve) => {
      const s = createServer();
      s.listen(0, '127.0.0.1', () => {
        const p = (s.address() as { port: number }).port;
        s.close(() => resolve(p));
      });
    });
    const err = await connectRedis(`redis://127.0.0.1:${port}`, { connectTimeoutMs: 1000 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(RedisUnavailableError);
    expect((err as Error).message).toContain(`127.0.0.1:${port}`);
    expect((err as Error).message).toContain('--redis');
  });

  it('hides the password in URLs it prints', () => {
    expect(redactRedisUrl('redis://user:s3cret@10.0.0.1:6379/0')).not.toContain('s3cret');
  });
});
