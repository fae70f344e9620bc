/** Lua pieces the scripts of this package share. */

/** Sets `now` to Redis's clock in ms: one clock for every node (no skew between their own). */
export const LUA_NOW_MS = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
`;
