"""The Lua scripts of the Redis session stores and the hash layout they rely on.

Each script runs atomically on the server, so a save, take, purge or counter
increment is one step however many processes or nodes share the Redis.
"""

from __future__ import annotations

__all__ = [
    "ACCESSED_FIELD",
    "CREATED_FIELD",
    "INCR_LUA",
    "PURGE_LUA",
    "SAVE_LUA",
    "TAKE_LUA",
    "VALUE_PREFIX",
]

# Hash layout: user keys live under "k:<key>" (JSON values), timestamps under
# "m:created" / "m:accessed" (epoch seconds as text), so neither can clash.
CREATED_FIELD = "m:created"
ACCESSED_FIELD = "m:accessed"
VALUE_PREFIX = "k:"

# KEYS[1] session hash.  ARGV: now, idle, absolute, new (0/1), touch (0/1),
# ndel, <ndel field names>, then field/value pairs.  Returns 1 if written.
SAVE_LUA = """
local key = KEYS[1]
local now_s = ARGV[1]
local now = tonumber(now_s)
local idle = tonumber(ARGV[2])
local absolute = tonumber(ARGV[3])
local is_new = ARGV[4] == '1'
local touch = ARGV[5] == '1'
local ndel = tonumber(ARGV[6])
local kind = redis.call('TYPE', key)['ok']
local created_s, accessed_s = now_s, now_s
if kind == 'hash' then
  local meta = redis.call('HMGET', key, 'm:created', 'm:accessed')
  if tonumber(meta[1]) then created_s = meta[1] end
  if tonumber(meta[2]) then accessed_s = meta[2] end
  if now - tonumber(accessed_s) > idle or now - tonumber(created_s) > absolute then
    redis.call('DEL', key)
    if not is_new then return 0 end
    created_s, accessed_s = now_s, now_s
  end
elseif kind == 'none' then
  if not is_new then return 0 end
else
  -- not a hash: a corrupt record, loaded as an empty session; replace it
  redis.call('DEL', key)
end
if kind == 'hash' then
  -- a value that is not JSON makes the whole record load as empty: match that
  local all = redis.call('HGETALL', key)
  local corrupt = false
  for i = 1, #all, 2 do
    if string.sub(all[i], 1, 2) == 'k:' and not pcall(cjson.decode, all[i + 1]) then
      corrupt = true
      break
    end
  end
  if corrupt then
    for i = 1, #all, 2 do
      if string.sub(all[i], 1, 2) == 'k:' then redis.call('HDEL', key, all[i]) end
    end
  end
end
if touch or is_new then accessed_s = now_s end
for i = 7, 6 + ndel do
  redis.call('HDEL', key, ARGV[i])
end
for i = 7 + ndel, #ARGV - 1, 2 do
  redis.call('HSET', key, ARGV[i], ARGV[i + 1])
end
redis.call('HSET', key, 'm:created', created_s, 'm:accessed', accessed_s)
local expires = math.min(tonumber(accessed_s) + idle, tonumber(created_s) + absolute)
local ttl = math.ceil((expires - now) * 1000)
if ttl < 1 then ttl = 1 end
redis.call('PEXPIRE', key, ttl)
return 1
"""

# KEYS[1] session hash.  ARGV: now, idle, absolute, then the "k:" field names
# to take.  Deletes those present and returns them as a flat name/value list;
# returns {} (writing nothing) for an absent, expired or corrupt record.  Never
# touches m:accessed or the TTL.
TAKE_LUA = """
local key = KEYS[1]
local now = tonumber(ARGV[1])
local idle = tonumber(ARGV[2])
local absolute = tonumber(ARGV[3])
if redis.call('TYPE', key)['ok'] ~= 'hash' then return {} end
local meta = redis.call('HMGET', key, 'm:created', 'm:accessed')
local created = tonumber(meta[1]) or now
local accessed = tonumber(meta[2]) or now
if now - accessed > idle or now - created > absolute then return {} end
-- a value that is not JSON makes the whole record load as empty: match that
local all = redis.call('HGETALL', key)
for i = 1, #all, 2 do
  if string.sub(all[i], 1, 2) == 'k:' and not pcall(cjson.decode, all[i + 1]) then
    return {}
  end
end
local taken = {}
for i = 4, #ARGV do
  local value = redis.call('HGET', key, ARGV[i])
  if value then
    redis.call('HDEL', key, ARGV[i])
    taken[#taken + 1] = ARGV[i]
    taken[#taken + 1] = value
  end
end
return taken
"""

# KEYS: candidate session hashes.  ARGV: now, idle, absolute.  Deletes the
# expired ones (by the store's clock, which may run ahead of Redis's TTLs).
PURGE_LUA = """
local now = tonumber(ARGV[1])
local idle = tonumber(ARGV[2])
local absolute = tonumber(ARGV[3])
local removed = 0
for _, key in ipairs(KEYS) do
  if redis.call('TYPE', key)['ok'] == 'hash' then
    local meta = redis.call('HMGET', key, 'm:created', 'm:accessed')
    local created, accessed = tonumber(meta[1]), tonumber(meta[2])
    if created and accessed and (now - accessed > idle or now - created > absolute) then
      redis.call('DEL', key)
      removed = removed + 1
    end
  end
end
return removed
"""

# KEYS[1] counter hash ("v" value, "r" epoch end of its window).  ARGV: now,
# window, amount.  Starts afresh when absent, not a counter or its window has
# ended (by the store's clock, like sessions); amount 0 only reads.  Returns
# {value, window end} as text (Lua numbers would come back truncated to integers).
INCR_LUA = """
local key = KEYS[1]
local now = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
local amount = tonumber(ARGV[3])
local value, reset = 0, now + window
if redis.call('TYPE', key)['ok'] == 'hash' then
  local f = redis.call('HMGET', key, 'v', 'r')
  local v, r = tonumber(f[1]), tonumber(f[2])
  if v and r and r > now then value, reset = v, r end
end
if amount > 0 then
  value = value + amount
  redis.call('DEL', key)
  redis.call('HSET', key, 'v', string.format('%d', value), 'r', string.format('%.17g', reset))
  local ttl = math.ceil((reset - now) * 1000)
  if ttl < 1 then ttl = 1 end
  redis.call('PEXPIRE', key, ttl)
end
return {string.format('%d', value), string.format('%.17g', reset)}
"""
