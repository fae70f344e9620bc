/**
 * @packageDocumentation
 *
 * `@nat/redis`: the state several nat-server nodes share, kept in Redis. One nat-server needs
 * none of it (its state lives in memory, the default); a network that outgrows one machine runs
 * several nodes pointed at one Redis (`nat-server --redis URL`), and this package is where each
 * shared table lives, each an implementation of an interface @nat/server injects:
 *
 * - connections ({@link connectRedis}): fail fast while Redis is down, never queue without bound;
 * - a node ({@link openRedisNode}): two connections, the rendezvous cluster and the relay scope;
 * - the rendezvous across nodes ({@link RedisRendezvousCluster}, @nat/server's RendezvousCluster):
 *   presence (`peer:ID` -> `INSTANCE SEQ`, renewed by its node; newest registration wins and the
 *   previous node is told), node liveness (`node:INSTANCE`, renewed every `heartbeatMs` = 1 s,
 *   dead after `nodeTtlMs` = 5 s; `nodes`, a sorted set of live instances), signalling between
 *   nodes (a pub/sub channel `to:INSTANCE` per node; a forward is one Lua script: look up,
 *   check liveness, PUBLISH), names (`name:NAME`, `names-of:ID`, `names`, `name-claims:SOURCE`,
 *   claimed atomically with the limits of one node's NameTable); at most `maxInFlight` (1,000)
 *   commands wait for Redis, beyond which forwards are refused `busy` instead of queued;
 * - the relay scope across nodes ({@link RedisRelayScope}): each node keeps it in memory, writes
 *   are published on `scope` (the writes of one signalling message in one PUBLISH) and applied by
 *   every other node;
 * - TURN users and REST secrets in coturn's layout ({@link coturnUserDb}, `--redis-userdb`);
 * - TURN allocation quotas counted across nodes ({@link RedisTurnQuota});
 * - TURN load published by every node, for ALTERNATE-SERVER redirects ({@link TurnLoadBoard});
 * - public exposure across nodes ({@link RedisExposeCluster}): each user's public ports counted
 *   on every node together (`expose:ports:user:USER`, members leased like the TURN quotas) and
 *   owner advertisements (`expose:owner:IP/TRANSPORT/PORT`) every node's owner lookup reads;
 * - errors: {@link RedisStateError} is the base class of every error thrown here.
 *
 * Keys all start with a prefix (default `nat:`), so one Redis can serve other programs too
 * (coturn's user database, read as coturn writes it, keeps its own `turn/` keys).
 */
export { type ConnectRedisInit, connectRedis, redactRedisUrl } from './connection.js';
export { RedisStateError, RedisUnavailableError } from './errors.js';
export { type RedisNode, type RedisNodeInit, openRedisNode } from './node.js';
export { type RedisRendezvousInit, type RedisRendezvousConnections, RedisRendezvousCluster, checkNodeId } from './rendezvous.js';
export { type RedisRelayScopeInit, type RedisRelayScopeStats, RedisRelayScope } from './scope.js';
export { type CoturnUserDbInit, coturnKeys, coturnUserDb, redisUrlOf } from './coturn-userdb.js';
export { RedisTurnQuota, type RedisTurnQuotaInit } from './turn-quota.js';
export { RedisExposeCluster, type RedisExposeClusterInit } from './expose.js';
export { type LocalTurnLoad, TurnLoadBoard, type TurnLoadBoardInit, type TurnNodeLoad } from './turn-load.js';
