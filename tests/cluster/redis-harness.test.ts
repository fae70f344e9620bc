import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type RedisServer, startRedis } from './redis.js';

// The harness itself: a real redis-server answers, counts commands and stops.
describe('redis-server harness', () => {
  let redis: RedisServer;
  beforeAll(async () => {
    redis = await startRedis();
  });
  afterAll(async () => {
    await redis?.stop();
  });

  it('answers commands and counts them', async () => {
    expect(await redis.command('SET', 'nat:k', 'v')).toBe('+OK\r\n');
    expect(await redis.command('GET', 'nat:k')).toBe('$1\r\nv\r\n');
    const before = await redis.commandsProcessed();
    await redis.command('INCR', 'nat:n');
    expect(await redis.commandsProcessed()).toBeGreaterThan(before);
  });

  it('is gone after stop', async () => {
    const other = await startRedis();
    await other.stop({ kill: true });
    await expect(other.command('PING')).rejects.toThrow();
  });
});
