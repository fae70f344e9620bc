/**
 * @packageDocumentation
 *
 * `@nat/redis`: the state several nat-server nodes share, kept in Redis. One nat-server needs
 * none of it (its state lives in memory, the default); a network that outgrows one machine runs
 * several nodes pointed at one Redis (`nat-server --redis URL`), and this package is where each
 * shared table lives, each an implementation of an interface @nat/server injects:
 *
 * - connections ({@link connectRedis}): fail fast while Redis is down, never queue without bound;
 * - TURN users and REST secrets in coturn's layout ({@link coturnUserDb}, `--redis-userdb`);
 * - TURN allocation quotas counted across nodes ({@link RedisTurnQuota});
 * - TURN load published by every node, for ALTERNATE-SERVER redirects ({@link TurnLoadBoard});
 * - errors: {@link RedisStateError} is the base class of every error thrown here.
 *
 * Keys all start with a prefix (default `nat:`), so one Redis can serve other programs too
 * (coturn's user database, read as coturn writes it, keeps its own `turn/` keys).
 */
export { type ConnectRedisInit, connectRedis, redactRedisUrl } from './connection.js';
export { RedisStateError, RedisUnavailableError } from './errors.js';
export { type CoturnUserDbInit, coturnKeys, coturnUserDb, redisUrlOf } from './coturn-userdb.js';
export { RedisTurnQuota, type RedisTurnQuotaInit } from './turn-quota.js';
export { type LocalTurnLoad, TurnLoadBoard, type TurnLoadBoardInit, type TurnNodeLoad } from './turn-load.js';
