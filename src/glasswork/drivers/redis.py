"""An SQS-like queue on Redis, for workers on your own hosts.

`RedisQueueDriver` keeps the semantics of `SQLiteQueueDriver` (the reference:
visibility timeouts, receive counts, delays, redrive at `max_receive_count`,
FIFO groups, deduplication, a dead-letter store, stale receipt handles) on a
Redis server shared by any number of worker processes and hosts. It
implements every protocol of `glasswork.drivers.base`, plus the queue
configuration, `send_raw`, `purge_dead_letters`, `queues` and the schedule
lease (`claim_tick`) that the SQLite driver has. Records come in the same
Lambda shape: `eventSourceARN` `arn:aws:sqs:local:000000000000:<queue>`,
`awsRegion` `"local"`.

Key layout (`P` is the prefix, default `glasswork`; `{q}` is the queue name
as a hash tag, so one queue's keys share a cluster slot):

```
P:queues              SET   every queue name ever sent to (no KEYS/SCAN anywhere)
P:{q}:config          HASH  configure_queue settings: fifo, deduplicate,
                            max_receive_count, visibility_timeout
P:{q}:seq             STR   counter: message sequence numbers and dead-letter order
P:{q}:m:<seq>         HASH  one message: id, body, job, jid, grp, dd, sent, rc,
                            first, tok (current receipt token); a dead letter
                            adds reason, etype, emsg, att and keeps the token
                            that dead-lettered it as dtok
P:{q}:new             ZSET  never-received messages, scored by visible-at
                            (a delayed one is scored in the future)
P:{q}:recv            ZSET  received messages, scored by visible-at (in flight
                            while in the future, visible again after)
P:{q}:dead            ZSET  dead letters, scored by dead-letter order
P:{q}:j:<job>         ZSET  the dead letters of one job, same scores (filters)
P:{q}:g:<group>       ZSET  a FIFO group's messages, scored by sequence
P:{q}:i:<group>       ZSET  a FIFO group's received messages, by visible-at
P:{q}:gready          ZSET  FIFO groups whose head can be received now, by head sequence
P:{q}:gwait           ZSET  the other non-empty FIFO groups, by when to look again
P:{q}:ddz, P:{q}:ddh  ZSET + HASH  deduplication ids: expiry, original message id
P:{schedule}:ticks, P:{schedule}:tick-owners  HASH  the last tick claimed per key
```

`<seq>` is the 20-digit zero-padded sequence number, so members that tie on
a score sort in enqueue order, as SQLite's `ORDER BY visible_at, id` does.

Atomicity. Every state change is one Lua script, loaded once
(`register_script`) and run with EVALSHA (redis-py reloads it after a
`SCRIPT FLUSH`): enqueue (one call for a whole batch to one queue), receive
(promotes due FIFO groups, picks visible messages, redrives those over
`max_receive_count` to the dead letters, bumps receive counts, stores fresh
receipt tokens), delete, change_visibility, dead_letter, redrive, purge,
purge_dead_letters and claim_tick; list_dead_letters is a read-only script
so it reads an index and the hashes it names at one instant. Scripts, because
each of these reads state and writes depending on it, which MULTI/EXEC
cannot do. MULTI/EXEC is used where no decision depends on a read: `counts`
(five reads as one snapshot) and `enqueue_batch` over several queues (one
EVAL per queue inside one transaction: all or none; EVAL rather than EVALSHA
there, so that a flushed script cache cannot fail one part of the batch).
`configure_queue` is one HSET. Not atomic with the rest, on purpose: the
queue registry (an SADD before a process's first enqueue to a queue, or in
the batch's transaction; a registered queue that is empty is harmless,
`queues` skips it) and `queues` itself (the registry, then the sizes).

Failure guarantees. A script runs alone: no client sees a half-received batch
or a message in two states. Redis does not roll back a script that fails
half-way; these scripts fail only if something else wrote glasswork's keys
with another type, or the server dies (then persistence decides: configure
`appendonly yes` for SQS-like durability). Out of memory, Redis refuses a
script at its first write, before it changed anything. Use
`maxmemory-policy noeviction`: an evicted key is a lost message. redis-py
retries a command whose connection failed; a reply lost after a script ran
may so run an enqueue twice (at least once, as SQS's own SDK retries). Redis
errors become `DriverError` (`ThrottledError` for BUSY, LOADING and
TRYAGAIN) with the redis exception as `__cause__`. The key layout is ready
for Redis Cluster (each script touches one slot), but the driver takes a
`redis.Redis` client: one server, or a proxy in front of a cluster.

Time. Every time comes from the driver's `clock` and is passed to the
scripts as an argument (Redis's TIME is never read), so tests drive it. The
consequence: workers on several hosts must keep their clocks synchronized
(NTP); a host whose clock runs ahead takes messages before their timeout
has passed on the others. SQS needs no such care.

Receipt handles are `<queue>:<seq>:<token>`: the token is random, issued per
receive and stored with the message, so a stale handle (the message was
received again since, or is gone) can neither delete nor change it. A
message that the handle's own receive dead-lettered (the worker's
`dead_letter`, or the redrive at `max_receive_count` after that receive)
keeps that token, so `delete` does not call the handle stale.

Cost. Enqueue, receive, delete and visibility changes are O(log n) per
message and one round trip per call, whatever the number of queues a
`delete` or `change_visibility` spans. FIFO receives also pay per group they
look at, bounded by `max_messages` plus the groups whose ready messages are
all over `max_receive_count`. `purge` and `purge_dead_letters` are O(n) in
one script: the server does nothing else meanwhile.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import time
import uuid
from collections.abc import Callable, Sequence
from typing import Final
from urllib.parse import parse_qs, urlsplit, urlunsplit

import redis
from redis.commands.core import Script

from glasswork._wire import (
    EnqueueResult,
    JobMessage,
    SQSMessageAttribute,
    SQSRecord,
    SQSRecordAttributes,
    check_delay,
)
from glasswork.drivers.base import (
    ATTR_JOB_NAME,
    DeadLetterEntry,
    DeadLetterInfo,
    QueueCounts,
    VisibilityChange,
)
from glasswork.drivers.sqlite import (
    _QUEUE_NAME,
    ACCOUNT_ID,
    DEFAULT_MAX_RECEIVE_COUNT,
    MAX_RECEIVE_COUNT_REASON,
    REGION,
    QueueConfig,
    _check_queue,
    queue_arn,
)
from glasswork.errors import DriverError, InvalidQueueURLError, ThrottledError

__all__ = ["RedisQueueDriver"]

_PREFIX: Final = re.compile(r"^[A-Za-z0-9_.:/-]{1,100}$")
_HANDLE: Final = re.compile(r"([A-Za-z0-9_.-]{1,80}):([0-9]{20}):([0-9a-f]{16})")
_CONFIG_TTL: Final = 1.0
_MAX_WAIT_STEP: Final = 0.2
_TOKEN_HEX: Final = 16
_THROTTLE_PREFIXES: Final = ("BUSY", "LOADING", "TRYAGAIN")
_URL_PARAMETERS: Final = ("queue", "prefix")
_RECORD_FIELDS: Final = 9
_DEAD_FIELDS: Final = 8

# --- Lua ---------------------------------------------------------------------
# Every queue script gets the same KEYS and the queue's key base as ARGV[1].
# Per-message and per-group keys are built from that base: they carry the
# same hash tag, so they live in the slot of the declared keys.

_PRELUDE: Final = """
local NEW, RECV, SEQ, DEAD = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local GREADY, GWAIT, DDZ, DDH = KEYS[5], KEYS[6], KEYS[7], KEYS[8]
local BASE = ARGV[1]

local function opt(value)
  if value == '' then return nil end
  return string.sub(value, 2)
end
local function mkey(member) return BASE .. 'm:' .. member end
local function gkey(group) return BASE .. 'g:' .. group end
local function ikey(group) return BASE .. 'i:' .. group end
local function jkey(job) return BASE .. 'j:' .. job end
local function pad(seq) return string.format('%020d', seq) end

-- File a FIFO group where receives look for it: in GREADY (by its head's
-- sequence) when its head can be received now, else in GWAIT (by when to
-- look again: the end of its last in-flight message, or its head's delay).
local function place(group, now)
  local head = redis.call('ZRANGE', gkey(group), 0, 0)[1]
  if not head then
    redis.call('ZREM', GREADY, group)
    redis.call('ZREM', GWAIT, group)
    return
  end
  local wait = nil
  local last = redis.call('ZRANGE', ikey(group), -1, -1, 'WITHSCORES')
  if last[2] and tonumber(last[2]) > now then wait = tonumber(last[2]) end
  if not wait then
    local due = redis.call('ZSCORE', NEW, head)
    if due and tonumber(due) > now then wait = tonumber(due) end
  end
  if wait then
    redis.call('ZREM', GREADY, group)
    redis.call('ZADD', GWAIT, wait, group)
  else
    redis.call('ZREM', GWAIT, group)
    redis.call('ZADD', GREADY, tonumber(head), group)
  end
end

-- Take a message out of every live index (its hash stays).
local function unlink(member, group)
  redis.call('ZREM', NEW, member)
  redis.call('ZREM', RECV, member)
  if group then
    redis.call('ZREM', gkey(group), member)
    redis.call('ZREM', ikey(group), member)
  end
end

-- Move a live message to the dead letters. `token` is the receipt token of
-- the receive that led here: a delete with that handle is then not stale.
local function bury(member, group, job, token, reason, etype, emsg, attempt)
  local key = mkey(member)
  unlink(member, group)
  local order = redis.call('INCR', SEQ)
  redis.call('ZADD', DEAD, order, member)
  local fields = {'reason', reason, 'emsg', emsg, 'att', attempt}
  if job then
    redis.call('ZADD', jkey(job), order, member)
    fields[#fields + 1] = 'job'
    fields[#fields + 1] = job
  end
  if etype then
    fields[#fields + 1] = 'etype'
    fields[#fields + 1] = etype
  end
  if token then
    fields[#fields + 1] = 'dtok'
    fields[#fields + 1] = token
  end
  redis.call('HDEL', key, 'tok')
  redis.call('HSET', key, unpack(fields))
end
"""

_ENQUEUE: Final = (
    _PRELUDE
    + """
-- ARGV: base, now, dedup expiry, then per message: id, body, job, jid, group, dedup id, visible-at.
local now = tonumber(ARGV[2])
local n = (#ARGV - 3) / 7
local top = redis.call('INCRBY', SEQ, n)
local seq = top - n
local out, touched, swept = {}, {}, false
for a = 4, #ARGV, 7 do
  local id, dd = ARGV[a], opt(ARGV[a + 5])
  local seen = false
  if dd then
    if not swept then
      swept = true
      local old = redis.call('ZRANGEBYSCORE', DDZ, '-inf', ARGV[2], 'LIMIT', 0, 64)
      for _, d in ipairs(old) do
        redis.call('ZREM', DDZ, d)
        redis.call('HDEL', DDH, d)
      end
    end
    local expires = redis.call('ZSCORE', DDZ, dd)
    if expires and tonumber(expires) > now then seen = redis.call('HGET', DDH, dd) end
  end
  if seen then
    out[#out + 1] = seen
  else
    seq = seq + 1
    local member = pad(seq)
    local fields = {'id', id, 'body', ARGV[a + 1], 'sent', ARGV[2], 'rc', 0}
    local job, jid, group = opt(ARGV[a + 2]), opt(ARGV[a + 3]), opt(ARGV[a + 4])
    if job then fields[#fields + 1] = 'job'; fields[#fields + 1] = job end
    if jid then fields[#fields + 1] = 'jid'; fields[#fields + 1] = jid end
    if group then fields[#fields + 1] = 'grp'; fields[#fields + 1] = group end
    if dd then fields[#fields + 1] = 'dd'; fields[#fields + 1] = dd end
    redis.call('HSET', mkey(member), unpack(fields))
    redis.call('ZADD', NEW, ARGV[a + 6], member)
    if group then
      redis.call('ZADD', gkey(group), seq, member)
      touched[group] = true
    end
    if dd then
      redis.call('ZADD', DDZ, ARGV[3], dd)
      redis.call('HSET', DDH, dd, id)
    end
    out[#out + 1] = id
  end
end
for group in pairs(touched) do place(group, now) end
if top == n then out[#out + 1] = 1 else out[#out + 1] = 0 end
return out
"""
)

_RECEIVE: Final = (
    _PRELUDE
    + """
-- ARGV: base, now, visible-at for the claimed, max_receive_count, max_messages, tokens (hex), fifo.
local now, untl = tonumber(ARGV[2]), ARGV[3]
local limit, want = tonumber(ARGV[4]), tonumber(ARGV[5])
local tokens, fifo = ARGV[6], ARGV[7] == '1'
local out, mine, touched = {}, {}, {}
local claimed = 0

local function claim(member, rc)
  claimed = claimed + 1
  local token = string.sub(tokens, claimed * 16 - 15, claimed * 16)
  local key = mkey(member)
  local f = redis.call('HMGET', key, 'id', 'body', 'job', 'grp', 'dd', 'sent', 'first')
  local first = f[7] or ARGV[2]
  redis.call('HSET', key, 'rc', rc + 1, 'tok', token, 'first', first)
  redis.call('ZREM', NEW, member)
  redis.call('ZADD', RECV, untl, member)
  if f[4] then
    redis.call('ZADD', ikey(f[4]), untl, member)
    touched[f[4]] = true
  end
  mine[member] = true
  out[#out + 1] = member
  for k = 1, 6 do out[#out + 1] = f[k] end
  out[#out + 1] = rc + 1
  out[#out + 1] = first
end

local function exceed(member, rc)
  local f = redis.call('HMGET', mkey(member), 'tok', 'job', 'grp')
  local group = f[3] or nil
  bury(member, group, f[2] or nil, f[1] or nil, 'max_receive_count_exceeded', nil,
    'received ' .. rc .. ' times without being deleted (max_receive_count ' .. limit .. ')', rc)
  if group then touched[group] = true end
end

if not fifo then
  -- Oldest visible-at first, ties in enqueue order; refill after redrives, as SQLite does.
  for _ = 1, 8 do
    local need = want - claimed
    local a = redis.call('ZRANGEBYSCORE', NEW, '-inf', ARGV[2], 'WITHSCORES', 'LIMIT', 0, need)
    local b = redis.call('ZRANGEBYSCORE', RECV, '-inf', ARGV[2], 'WITHSCORES', 'LIMIT', 0, need + claimed)
    local i, j, picked = 1, 1, {}
    while #picked < need do
      while b[j] and mine[b[j]] do j = j + 2 end
      local pa, pb = a[i], b[j]
      if not pa and not pb then break end
      local from_new
      if not pb then
        from_new = true
      elseif not pa then
        from_new = false
      else
        local sa, sb = tonumber(a[i + 1]), tonumber(b[j + 1])
        from_new = sa < sb or (sa == sb and pa < pb)
      end
      if from_new then
        picked[#picked + 1] = {pa, false}
        i = i + 2
      else
        picked[#picked + 1] = {pb, true}
        j = j + 2
      end
    end
    if #picked == 0 then break end
    local exceeded = false
    for _, p in ipairs(picked) do
      local rc = 0
      if p[2] then rc = tonumber(redis.call('HGET', mkey(p[1]), 'rc')) end
      if rc >= limit then
        exceed(p[1], rc)
        exceeded = true
      else
        claim(p[1], rc)
      end
    end
    if not exceeded or claimed >= want then break end
  end
else
  -- Groups whose in-flight messages expired or whose delayed head came due.
  for _, group in ipairs(redis.call('ZRANGEBYSCORE', GWAIT, '-inf', ARGV[2])) do place(group, now) end
  -- Each ready group offers its run of receivable messages from the head (a
  -- delayed one ends it); the receive takes them in sequence order across
  -- groups, up to `want` claims. `bound` is the sequence of the want-th
  -- claimable candidate so far: no later message can be taken.
  local cands, seqs, bound, offset, finished = {}, {}, nil, 0, false
  while not finished do
    local page = redis.call('ZRANGE', GREADY, offset, offset + 31, 'WITHSCORES')
    if #page == 0 then break end
    for k = 1, #page, 2 do
      local group, head = page[k], tonumber(page[k + 1])
      if bound and head > bound then
        finished = true
        break
      end
      local taken, pos, stop = 0, 0, false
      while not stop do
        local members = redis.call('ZRANGE', gkey(group), pos, pos + want - 1)
        if #members == 0 then break end
        for _, member in ipairs(members) do
          local s = tonumber(member)
          if bound and s > bound then stop = true; break end
          local due = redis.call('ZSCORE', NEW, member)
          local rc = 0
          if due then
            if tonumber(due) > now then stop = true; break end
          else
            rc = tonumber(redis.call('HGET', mkey(member), 'rc'))
          end
          cands[#cands + 1] = {s, member, rc}
          if rc < limit then
            taken = taken + 1
            seqs[#seqs + 1] = s
            if taken >= want then stop = true; break end
          end
        end
        pos = pos + #members
      end
      if #seqs >= want then
        table.sort(seqs)
        for t = #seqs, want + 1, -1 do seqs[t] = nil end
        bound = seqs[want]
      end
    end
    offset = offset + #page / 2
  end
  table.sort(cands, function(x, y) return x[1] < y[1] end)
  for _, c in ipairs(cands) do
    if claimed >= want then break end
    if c[3] >= limit then exceed(c[2], c[3]) else claim(c[2], c[3]) end
  end
end
for group in pairs(touched) do place(group, now) end
return out
"""
).replace("@REASON@", MAX_RECEIVE_COUNT_REASON)

_DELETE: Final = (
    _PRELUDE
    + """
-- ARGV: base, now, then per handle: member, token. Returns the positions of stale handles.
local now = tonumber(ARGV[2])
local stale, touched = {}, {}
for i = 3, #ARGV, 2 do
  local member, token = ARGV[i], ARGV[i + 1]
  local key = mkey(member)
  local f = redis.call('HMGET', key, 'tok', 'dtok', 'grp')
  if f[1] == token then
    redis.call('DEL', key)
    unlink(member, f[3] or nil)
    if f[3] then touched[f[3]] = true end
  elseif f[2] ~= token then
    stale[#stale + 1] = (i - 1) / 2
  end
end
for group in pairs(touched) do place(group, now) end
return stale
"""
)

_CHANGE_VISIBILITY: Final = (
    _PRELUDE
    + """
-- ARGV: base, now, then per change: member, token, visible-at. Returns the positions of stale handles.
local now = tonumber(ARGV[2])
local stale, touched = {}, {}
for i = 3, #ARGV, 3 do
  local member, token, untl = ARGV[i], ARGV[i + 1], ARGV[i + 2]
  local f = redis.call('HMGET', mkey(member), 'tok', 'grp')
  if f[1] == token then
    redis.call('ZADD', RECV, untl, member)
    if f[2] then
      redis.call('ZADD', ikey(f[2]), untl, member)
      touched[f[2]] = true
    end
  else
    stale[#stale + 1] = i / 3
  end
end
for group in pairs(touched) do place(group, now) end
return stale
"""
)

_DEAD_LETTER: Final = (
    _PRELUDE
    + """
-- ARGV: base, now, member, token, reason, error type, error message, attempt, job, job id.
local member, token = ARGV[3], ARGV[4]
local f = redis.call('HMGET', mkey(member), 'tok', 'grp', 'job')
if f[1] ~= token then return 0 end
local group = f[2] or nil
bury(member, group, opt(ARGV[9]) or f[3] or nil, token, ARGV[5], ARGV[6], ARGV[7], ARGV[8])
local jid = opt(ARGV[10])
if jid then redis.call('HSET', mkey(member), 'jid', jid) end
if group then place(group, tonumber(ARGV[2])) end
return 1
"""
)

_LIST_DEAD: Final = (
    _PRELUDE
    + """
-- ARGV: base, job, last index.
local job = opt(ARGV[2])
local index = DEAD
if job then index = jkey(job) end
local out = {}
for _, member in ipairs(redis.call('ZRANGE', index, 0, tonumber(ARGV[3]))) do
  local f = redis.call('HMGET', mkey(member), 'id', 'body', 'job', 'jid', 'att', 'reason', 'etype', 'emsg')
  for k = 1, 8 do out[#out + 1] = f[k] end
end
return out
"""
)

_REDRIVE: Final = (
    _PRELUDE
    + """
-- ARGV: base, now, job, last index. A redriven message gets a new sequence
-- number (it queues behind what is there), receive count 0, no token.
local job = opt(ARGV[3])
local index = DEAD
if job then index = jkey(job) end
local members = redis.call('ZRANGE', index, 0, tonumber(ARGV[4]))
local touched = {}
for _, member in ipairs(members) do
  local key = mkey(member)
  local f = redis.call('HMGET', key, 'job', 'grp')
  redis.call('ZREM', DEAD, member)
  if f[1] then redis.call('ZREM', jkey(f[1]), member) end
  local seq = redis.call('INCR', SEQ)
  local fresh = pad(seq)
  local fkey = mkey(fresh)
  redis.call('RENAME', key, fkey)
  redis.call('HDEL', fkey, 'reason', 'etype', 'emsg', 'att', 'dtok', 'tok', 'first')
  redis.call('HSET', fkey, 'rc', 0)
  redis.call('ZADD', NEW, ARGV[2], fresh)
  if f[2] then
    redis.call('ZADD', gkey(f[2]), seq, fresh)
    touched[f[2]] = true
  end
end
for group in pairs(touched) do place(group, tonumber(ARGV[2])) end
return #members
"""
)

_PURGE: Final = (
    _PRELUDE
    + """
local n = 0
for _, index in ipairs({NEW, RECV}) do
  for _, member in ipairs(redis.call('ZRANGE', index, 0, -1)) do
    local key = mkey(member)
    local group = redis.call('HGET', key, 'grp')
    if group then redis.call('DEL', gkey(group), ikey(group)) end
    redis.call('DEL', key)
    n = n + 1
  end
end
redis.call('DEL', NEW, RECV, GREADY, GWAIT, DDZ, DDH)
return n
"""
)

_PURGE_DEAD: Final = (
    _PRELUDE
    + """
local members = redis.call('ZRANGE', DEAD, 0, -1)
for _, member in ipairs(members) do
  local key = mkey(member)
  local job = redis.call('HGET', key, 'job')
  if job then redis.call('DEL', jkey(job)) end
  redis.call('DEL', key)
end
redis.call('DEL', DEAD)
return #members
"""
)

_CLAIM_TICK: Final = """
-- KEYS: ticks, owners. ARGV: key, tick, owner, claimed at.
local last = redis.call('HGET', KEYS[1], ARGV[1])
if last and tonumber(last) >= tonumber(ARGV[2]) then return 0 end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('HSET', KEYS[2], ARGV[1], ARGV[3] .. ' ' .. ARGV[4])
return 1
"""

_Arg = str | int | float


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _opt_text(value: object) -> str | None:
    return None if value is None else _text(value)


def _opt(value: str | None) -> str:
    """An optional string as the scripts take it: `""` for none, else `"=" + value`."""
    return "" if value is None else "=" + value


def _ms(seconds: float) -> str:
    return str(int(seconds * 1000))


def _list(reply: object, what: str) -> list[object]:
    if not isinstance(reply, list):
        msg = f"redis queue gave an unexpected reply to {what}: {reply!r}"
        raise DriverError(msg)
    return reply


def _int(reply: object) -> int:
    if isinstance(reply, int):
        return reply
    return int(_text(reply))


def _wrap(exc: redis.RedisError, what: str) -> DriverError:
    text = str(exc) or type(exc).__name__
    if isinstance(exc, redis.exceptions.BusyLoadingError) or (
        isinstance(exc, redis.ResponseError) and text.startswith(_THROTTLE_PREFIXES)
    ):
        return ThrottledError(f"redis queue busy while trying to {what}: {text}")
    return DriverError(f"redis queue failed to {what}: {text}")


def _redact(url: str) -> str:
    """The URL without its password, for error messages."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.netloc.rpartition("@")[2]
    user = parts.username or ""
    return urlunsplit(parts._replace(netloc=f"{user}:***@{host}"))


def _connection_url(url: str, *, parameters: Sequence[str]) -> tuple[str, dict[str, str]]:
    """Check a `redis://` or `rediss://` URL; return it without query and its parameters.

    Raises:
        InvalidQueueURLError: Wrong scheme, bad host, port or db number, a
            fragment, or a parameter not in `parameters`.
    """
    shown = _redact(url)
    expected = "redis://HOST:PORT/DB?queue=NAME"
    try:
        parts = urlsplit(url)
        _ = parts.port  # raises ValueError for a port that is not a number in range
    except ValueError as exc:
        msg = f"bad port in redis queue URL {shown!r}: {exc}"
        raise InvalidQueueURLError(msg) from None
    if parts.scheme not in {"redis", "rediss"}:
        msg = f"not a redis queue URL (expected {expected}, or rediss:// for TLS): {shown!r}"
        raise InvalidQueueURLError(msg)
    if not parts.hostname:
        msg = f"redis queue URL needs a host ({expected}): {shown!r}"
        raise InvalidQueueURLError(msg)
    db = parts.path.removeprefix("/") or "0"
    if not db.isascii() or not db.isdigit() or len(db) > 5:
        msg = f"bad db number {db!r} in redis queue URL {shown!r} (expected /0, /1, ...)"
        raise InvalidQueueURLError(msg)
    if parts.fragment:
        msg = f"redis queue URL must not have a fragment: {shown!r}"
        raise InvalidQueueURLError(msg)
    try:
        raw = parse_qs(parts.query, keep_blank_values=True, strict_parsing=bool(parts.query))
    except ValueError as exc:
        msg = f"bad query string in redis queue URL {shown!r}: {exc}"
        raise InvalidQueueURLError(msg) from None
    unknown = sorted(set(raw) - set(parameters))
    if unknown:
        allowed = (
            f"only {' and '.join(repr(p) for p in parameters)}"
            if parameters
            else "none here; RedisQueueDriver.from_url takes 'queue' and 'prefix'"
        )
        msg = f"unknown parameter {unknown[0]!r} in redis queue URL {shown!r} ({allowed})"
        raise InvalidQueueURLError(msg)
    values: dict[str, str] = {}
    for name, given in raw.items():
        if len(given) != 1:
            msg = f"parameter {name!r} given {len(given)} times in redis queue URL {shown!r}"
            raise InvalidQueueURLError(msg)
        values[name] = given[0]
    return urlunsplit((parts.scheme, parts.netloc, f"/{int(db)}", "", "")), values


def _parse_handle(handle: str) -> tuple[str, str, str] | None:
    """`(queue, member, token)` from a receipt handle, or `None` if it is not one of ours."""
    found = _HANDLE.fullmatch(handle)
    if found is None or not _QUEUE_NAME.fullmatch(found.group(1)):
        return None
    return found.group(1), found.group(2), found.group(3)


class RedisQueueDriver:
    """An SQS-like queue on Redis; implements every glasswork driver protocol.

    Args:
        url_or_client: A `redis.Redis` client (the caller keeps owning it:
            `close` leaves it open), or a URL `redis://[USER:PASSWORD@]HOST[:PORT][/DB]`
            (`rediss://` for TLS) for a client the driver makes and closes;
            `queue` and `prefix` parameters belong to `from_url`.
        default_queue: The queue for messages and calls that name none.
        prefix: The first part of every key, so several applications (or
            tests) share a server without seeing each other's queues.
        clock: Returns the time in seconds since the epoch; injectable for
            tests. Every host's clock must agree (NTP): see the module docstring.
        max_receive_count: Receives before a message is redriven to the dead
            letters (default for queues not configured otherwise).
        visibility_timeout: Seconds a received message stays invisible
            (default for queues not configured otherwise, and for `receive`
            calls that pass none).
        dedup_window: Seconds a deduplication id is remembered (FIFO queues).
        sleep: Used by `receive(wait_seconds=...)` between polls.

    Raises:
        InvalidQueueURLError: The URL is not a redis URL this driver takes.
        QueueNotFoundError: `default_queue` is not a valid queue name.
        ValueError: An option is out of range, or the prefix has characters
            other than letters, digits and `_.:/-`.
    """

    def __init__(
        self,
        url_or_client: str | redis.Redis,
        *,
        default_queue: str = "default",
        prefix: str = "glasswork",
        clock: Callable[[], float] = time.time,
        max_receive_count: int = DEFAULT_MAX_RECEIVE_COUNT,
        visibility_timeout: int = 30,
        dedup_window: float = 300.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if max_receive_count < 1:
            msg = f"max_receive_count must be >= 1, got {max_receive_count}"
            raise ValueError(msg)
        if visibility_timeout < 0:
            msg = f"visibility_timeout must be >= 0, got {visibility_timeout}"
            raise ValueError(msg)
        if not _PREFIX.fullmatch(prefix):
            msg = f"invalid key prefix {prefix!r}: 1-100 letters, digits and '_.:/-'"
            raise ValueError(msg)
        _check_queue(default_queue)
        if isinstance(url_or_client, str):
            address, _ = _connection_url(url_or_client, parameters=())
            self._client = redis.Redis.from_url(address)
            self._owns_client = True
        else:
            self._client = url_or_client
            self._owns_client = False
        self.default_queue = default_queue
        self.prefix = prefix
        self.max_receive_count = max_receive_count
        self.visibility_timeout = visibility_timeout
        self.dedup_window = dedup_window
        self._clock = clock
        self._sleep = sleep
        self._closed = False
        self._configs: dict[str, tuple[float, QueueConfig]] = {}
        self._keys: dict[str, list[str]] = {}
        self._registered: set[str] = set()
        self._registry = f"{prefix}:queues"
        register = self._client.register_script
        self._enqueue_script = register(_ENQUEUE)
        self._receive_script = register(_RECEIVE)
        self._delete_script = register(_DELETE)
        self._visibility_script = register(_CHANGE_VISIBILITY)
        self._dead_letter_script = register(_DEAD_LETTER)
        self._list_dead_script = register(_LIST_DEAD)
        self._redrive_script = register(_REDRIVE)
        self._purge_script = register(_PURGE)
        self._purge_dead_script = register(_PURGE_DEAD)
        self._claim_tick_script = register(_CLAIM_TICK)

    # --- construction ---------------------------------------------------------

    @classmethod
    def from_url(
        cls,
        url: str,
        *,
        clock: Callable[[], float] = time.time,
        max_receive_count: int = DEFAULT_MAX_RECEIVE_COUNT,
        visibility_timeout: int = 30,
        dedup_window: float = 300.0,
    ) -> RedisQueueDriver:
        """Open a driver from a queue URL such as `redis://localhost:6379/0?queue=emails`.

        `rediss://` connects with TLS. The parameters are `queue` (default
        `"default"`), which becomes the driver's `default_queue` as on every
        driver's `from_url`, and `prefix` (default `"glasswork"`). For other
        client options (timeouts, certificates) make a `redis.Redis` and pass it
        to the constructor.

        Args:
            url: The queue URL.
            clock: As for the constructor.
            max_receive_count: As for the constructor.
            visibility_timeout: As for the constructor.
            dedup_window: As for the constructor.

        Returns:
            The driver, with the URL's queue as its `default_queue`.

        Raises:
            InvalidQueueURLError: A scheme other than `redis`/`rediss`, no host,
                a bad port or db number, an unknown or repeated parameter, or
                a bad queue name or prefix.
        """
        address, params = _connection_url(url, parameters=_URL_PARAMETERS)
        shown = _redact(url)
        queue = params.get("queue", "default")
        if not _QUEUE_NAME.fullmatch(queue):
            msg = (
                f"bad queue name {queue!r} in redis queue URL {shown!r}: letters, digits, '-' and '_',"
                " at most 80 characters, optionally ending in '.fifo'"
            )
            raise InvalidQueueURLError(msg)
        prefix = params.get("prefix", "glasswork")
        if not _PREFIX.fullmatch(prefix):
            msg = f"bad prefix {prefix!r} in redis queue URL {shown!r}: 1-100 letters, digits and '_.:/-'"
            raise InvalidQueueURLError(msg)
        return cls(
            address,
            default_queue=queue,
            prefix=prefix,
            clock=clock,
            max_receive_count=max_receive_count,
            visibility_timeout=visibility_timeout,
            dedup_window=dedup_window,
        )

    def __repr__(self) -> str:
        return f"RedisQueueDriver(prefix={self.prefix!r}, default_queue={self.default_queue!r})"

    @property
    def name(self) -> str:
        """`"redis"`."""
        return "redis"

    @property
    def client(self) -> redis.Redis:
        """The redis client the driver uses."""
        return self._client

    def close(self) -> None:
        """Stop using the server; close the client if the driver made it (from a URL)."""
        self._closed = True
        if self._owns_client:
            self._client.close()

    def __enter__(self) -> RedisQueueDriver:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _check_open(self) -> None:
        if self._closed:
            msg = f"redis queue driver (prefix {self.prefix!r}) is closed"
            raise DriverError(msg)

    def _queue_keys(self, queue: str) -> list[str]:
        keys = self._keys.get(queue)
        if keys is None:
            base = self._base(queue)
            keys = [base + k for k in ("new", "recv", "seq", "dead", "gready", "gwait", "ddz", "ddh")]
            self._keys[queue] = keys
        return keys

    def _base(self, queue: str) -> str:
        return f"{self.prefix}:{{{queue}}}:"

    def _run(self, script: Script, queue: str, args: Sequence[_Arg], what: str) -> object:
        self._check_open()
        try:
            return script(keys=self._queue_keys(queue), args=[self._base(queue), *args])
        except redis.RedisError as exc:
            raise _wrap(exc, what) from exc

    def _run_per_queue(self, script: Script, calls: dict[str, list[_Arg]], what: str) -> dict[str, object]:
        """Run `script` once per queue, pipelined: one round trip (two after a `SCRIPT FLUSH`)."""
        if len(calls) == 1:
            ((queue, args),) = calls.items()
            return {queue: self._run(script, queue, args, what)}
        self._check_open()
        queues = list(calls)
        results: dict[str, object] = {}
        try:
            for _ in range(2):
                pipe = self._client.pipeline(transaction=False)
                for queue in queues:
                    keys = self._queue_keys(queue)
                    pipe.evalsha(script.sha, len(keys), *keys, self._base(queue), *calls[queue])
                replies = pipe.execute(raise_on_error=False)
                missing: list[str] = []
                for queue, reply in zip(queues, replies, strict=True):
                    if isinstance(reply, redis.exceptions.NoScriptError):
                        missing.append(queue)
                    elif isinstance(reply, redis.RedisError):
                        raise reply
                    else:
                        results[queue] = reply
                if not missing:
                    return results
                script.sha = _text(self._client.script_load(script.script))
                queues = missing
        except redis.RedisError as exc:
            raise _wrap(exc, what) from exc
        msg = f"redis queue failed to {what}: the server keeps losing its scripts"
        raise DriverError(msg)

    # --- queue configuration --------------------------------------------------

    def configure_queue(
        self,
        name: str,
        *,
        fifo: bool | None = None,
        deduplicate: bool | None = None,
        max_receive_count: int | None = None,
        visibility_timeout: int | None = None,
    ) -> QueueConfig:
        """Store settings for one queue on the server.

        Every driver on the server (and prefix) sees them (others within a
        second: settings are cached that long). An argument left `None` keeps
        the stored value, or the driver's default where none is stored.

        Args:
            name: The queue name.
            fifo: Make the queue FIFO (a `.fifo` name always is).
            deduplicate: Deduplicate enqueues within `dedup_window` (FIFO
                queues always do).
            max_receive_count: Receives before a message is redriven to the dead letters.
            visibility_timeout: Default seconds a received message stays invisible.

        Returns:
            The queue's effective settings.

        Raises:
            QueueNotFoundError: The name is not a valid queue name.
            DriverError: The settings could not be stored.
            ValueError: `max_receive_count` below 1 or a negative `visibility_timeout`.
        """
        _check_queue(name)
        if max_receive_count is not None and max_receive_count < 1:
            msg = f"max_receive_count must be >= 1, got {max_receive_count}"
            raise ValueError(msg)
        if visibility_timeout is not None and visibility_timeout < 0:
            msg = f"visibility_timeout must be >= 0, got {visibility_timeout}"
            raise ValueError(msg)
        settings = {
            "fifo": None if fifo is None else int(fifo),
            "deduplicate": None if deduplicate is None else int(deduplicate),
            "max_receive_count": max_receive_count,
            "visibility_timeout": visibility_timeout,
        }
        items: list[str | int] = [v for k, value in settings.items() if value is not None for v in (k, value)]
        if items:
            self._check_open()
            try:
                self._client.hset(self._base(name) + "config", items=items)
            except redis.RedisError as exc:
                raise _wrap(exc, f"configure queue {name!r}") from exc
        self._configs.pop(name, None)
        return self.queue_config(name)

    def queue_config(self, queue: str | None = None) -> QueueConfig:
        """The effective settings of a queue (stored ones over the driver's defaults).

        Args:
            queue: The queue; the default queue when `None`.

        Returns:
            The settings, read at most a second ago.

        Raises:
            QueueNotFoundError: The name is not a valid queue name.
            DriverError: The server could not be read.
        """
        name = queue or self.default_queue
        now = time.monotonic()
        cached = self._configs.get(name)
        if cached is not None and now - cached[0] < _CONFIG_TTL:
            return cached[1]
        _check_queue(name)
        self._check_open()
        try:
            raw = self._client.hgetall(self._base(name) + "config")
        except redis.RedisError as exc:
            raise _wrap(exc, f"read the settings of queue {name!r}") from exc
        stored = {_text(k): _text(v) for k, v in dict(raw).items()}
        is_fifo = name.endswith(".fifo") or stored.get("fifo") == "1"
        max_receive = stored.get("max_receive_count")
        visibility = stored.get("visibility_timeout")
        config = QueueConfig(
            name=name,
            fifo=is_fifo,
            deduplicate=is_fifo or stored.get("deduplicate") == "1",
            max_receive_count=self.max_receive_count if max_receive is None else int(max_receive),
            visibility_timeout=self.visibility_timeout if visibility is None else int(visibility),
        )
        self._configs[name] = (now, config)
        return config

    def queue_visibility_timeout(self, queue: str | None = None) -> int:
        """The visibility timeout a `receive` without one uses: the queue's stored one, else the driver's.

        Raises:
            QueueNotFoundError: The queue name is not valid.
            DriverError: The server failed.
        """
        return self.queue_config(queue).visibility_timeout

    def claim_tick(self, key: str, tick: float, owner: str) -> bool:
        """Claim a periodic job's tick for one worker among those sharing this server and prefix.

        One script reads the last tick claimed for `key` and, when `tick` is
        later, records it with `owner`; so of several workers that reach the
        same tick, exactly one gets `True`.

        Raises:
            DriverError: The server failed.
        """
        self._check_open()
        base = f"{self.prefix}:{{schedule}}:"
        try:
            claimed = self._claim_tick_script(
                keys=[base + "ticks", base + "tick-owners"], args=[key, float(tick), owner, self._clock()]
            )
        except redis.RedisError as exc:
            raise _wrap(exc, f"claim schedule tick {key!r}") from exc
        return _int(claimed) == 1

    # --- sending side ---------------------------------------------------------

    def enqueue(self, message: JobMessage) -> EnqueueResult:
        """Add one message to its queue (`message.queue`, else the default queue).

        On a deduplicating queue, a deduplication id (the job id) seen within
        `dedup_window` seconds returns the original's message id and adds nothing.

        Raises:
            QueueNotFoundError: The queue name is not valid.
            DriverError: The message was not stored.
            ValueError: A delay over `MAX_ENQUEUE_DELAY_SECONDS` (365 days).
        """
        check_delay(message.delay_seconds)
        config = self.queue_config(message.queue)
        now = self._clock()
        args: list[_Arg] = [now, now + self.dedup_window]
        self._message_args(args, config, message, now)
        (message_id,) = self._send(config.name, args, "enqueue a message")
        return EnqueueResult(message_id=message_id, job_id=message.job_id)

    def enqueue_batch(self, messages: Sequence[JobMessage]) -> list[EnqueueResult]:
        """Add messages, all or none, in one round trip; results in input order.

        The messages of one queue go in one script call; a batch over several
        queues runs one call per queue inside one MULTI/EXEC transaction.

        Raises:
            QueueNotFoundError: A queue name is not valid (nothing is added).
            DriverError: The messages were not stored (nothing is added).
            ValueError: A delay over `MAX_ENQUEUE_DELAY_SECONDS` (nothing is added).
        """
        if not messages:
            return []
        for message in messages:
            check_delay(message.delay_seconds)
        configs = [self.queue_config(m.queue) for m in messages]
        now = self._clock()
        calls: dict[str, list[_Arg]] = {}
        positions: dict[str, list[int]] = {}
        for position, (message, config) in enumerate(zip(messages, configs, strict=True)):
            args = calls.get(config.name)
            if args is None:
                args = calls[config.name] = [now, now + self.dedup_window]
                positions[config.name] = []
            self._message_args(args, config, message, now)
            positions[config.name].append(position)
        ids: list[str] = [""] * len(messages)
        if len(calls) == 1:
            ((queue, args),) = calls.items()
            sent = {queue: self._send(queue, args, f"enqueue {len(messages)} messages")}
        else:
            sent = self._send_transaction(calls, f"enqueue {len(messages)} messages")
        for queue, queue_ids in sent.items():
            for position, message_id in zip(positions[queue], queue_ids, strict=True):
                ids[position] = message_id
        return [
            EnqueueResult(message_id=message_id, job_id=message.job_id)
            for message_id, message in zip(ids, messages, strict=True)
        ]

    def send_raw(
        self,
        body: str,
        *,
        queue: str | None = None,
        job_name: str | None = None,
        delay_seconds: float = 0,
        group_id: str | None = None,
        deduplication_id: str | None = None,
    ) -> str:
        """Add a message with any body, as a foreign producer (or a test of poison messages) would.

        Args:
            body: The message body, sent as it is (it need not be JSON).
            queue: The queue; the default queue when `None`.
            job_name: The `JobName` message attribute, if any.
            delay_seconds: Seconds before the message becomes visible.
            group_id: The FIFO message group (default: the queue name).
            deduplication_id: The FIFO deduplication id (default: a fresh one,
                so nothing is deduplicated).

        Returns:
            The message id (the original's, for a deduplicated send).

        Raises:
            QueueNotFoundError: The queue name is not valid.
            DriverError: The message was not stored.
            ValueError: A delay over `MAX_ENQUEUE_DELAY_SECONDS` (365 days).
        """
        check_delay(delay_seconds)
        config = self.queue_config(queue)
        now = self._clock()
        args: list[_Arg] = [now, now + self.dedup_window]
        self._fields(
            args,
            config,
            now=now,
            body=body,
            job_name=job_name,
            job_id=None,
            group_id=group_id,
            deduplication_id=deduplication_id or str(uuid.uuid4()),
            delay_seconds=delay_seconds,
        )
        (message_id,) = self._send(config.name, args, "send a message")
        return message_id

    def _message_args(self, args: list[_Arg], config: QueueConfig, message: JobMessage, now: float) -> None:
        self._fields(
            args,
            config,
            now=now,
            body=message.body,
            job_name=message.job_name,
            job_id=message.job_id,
            group_id=message.group_id,
            deduplication_id=message.deduplication_id,
            delay_seconds=message.delay_seconds,
        )

    @staticmethod
    def _fields(
        args: list[_Arg],
        config: QueueConfig,
        *,
        now: float,
        body: str,
        job_name: str | None,
        job_id: str | None,
        group_id: str | None,
        deduplication_id: str | None,
        delay_seconds: float,
    ) -> None:
        args += (
            str(uuid.uuid4()),
            body,
            _opt(job_name),
            _opt(job_id),
            _opt((group_id or config.name) if config.fifo else None),
            _opt(deduplication_id if config.deduplicate else None),
            now + max(delay_seconds, 0),
        )

    def _send(self, queue: str, args: list[_Arg], what: str) -> list[str]:
        registered_now = self._register(queue, what)
        reply = _list(self._run(self._enqueue_script, queue, args, what), what)
        if _int(reply[-1]) == 1 and not registered_now:
            # A new counter: the keyspace was emptied since this process registered the queue.
            self._registered.discard(queue)
            with contextlib.suppress(DriverError):  # stored already; the next enqueue registers it
                self._register(queue, what)
        return [_text(v) for v in reply[:-1]]

    def _send_transaction(self, calls: dict[str, list[_Arg]], what: str) -> dict[str, list[str]]:
        self._check_open()
        script = _text(self._enqueue_script.script)
        try:
            pipe = self._client.pipeline(transaction=True)
            pipe.sadd(self._registry, *calls)
            for queue, args in calls.items():
                keys = self._queue_keys(queue)
                pipe.eval(script, len(keys), *keys, self._base(queue), *args)
            replies = pipe.execute()[1:]
        except redis.RedisError as exc:
            raise _wrap(exc, what) from exc
        self._registered.update(calls)
        return {
            queue: [_text(v) for v in _list(raw, what)[:-1]]
            for queue, raw in zip(calls, replies, strict=True)
        }

    def _register(self, queue: str, what: str) -> bool:
        """Add the queue to the registry unless this process did; whether it did now.

        Raises:
            DriverError: The registry could not be written (nothing was sent yet).
        """
        if queue in self._registered:
            return False
        self._check_open()
        try:
            self._client.sadd(self._registry, queue)
        except redis.RedisError as exc:
            raise _wrap(exc, what) from exc
        self._registered.add(queue)
        return True

    # --- consuming side -------------------------------------------------------

    def receive(
        self,
        queue: str | None = None,
        *,
        max_messages: int = 10,
        visibility_timeout: int | None = None,
        wait_seconds: float = 0.0,
    ) -> list[SQSRecord]:
        """Claim up to `max_messages` visible messages, shaped as Lambda delivers them.

        Each returned message is invisible for `visibility_timeout` seconds (the
        queue's default when `None`) and has a fresh receipt handle. A message
        already received `max_receive_count` times is moved to the dead
        letters instead (reason `"max_receive_count_exceeded"`).

        Args:
            queue: The queue; the default queue when `None`.
            max_messages: The most records to return (at least 1).
            visibility_timeout: Seconds the messages stay invisible.
            wait_seconds: Poll this long (real time) while nothing is visible.

        Returns:
            The records, possibly none.

        Raises:
            QueueNotFoundError: The queue name is not valid.
            DriverError: The server failed.
            ValueError: `max_messages` below 1 or a negative visibility timeout.
        """
        if max_messages < 1:
            msg = f"max_messages must be >= 1, got {max_messages}"
            raise ValueError(msg)
        config = self.queue_config(queue)
        timeout = config.visibility_timeout if visibility_timeout is None else visibility_timeout
        if timeout < 0:
            msg = f"visibility_timeout must be >= 0, got {timeout}"
            raise ValueError(msg)
        records = self._receive_once(config, max_messages, timeout)
        if records or wait_seconds <= 0:
            return records
        deadline = time.monotonic() + wait_seconds
        step = 0.01
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return records
            self._sleep(min(step, left))
            step = min(step * 2, _MAX_WAIT_STEP)
            records = self._receive_once(config, max_messages, timeout)
            if records:
                return records

    def _receive_once(self, config: QueueConfig, max_messages: int, timeout: int) -> list[SQSRecord]:
        now = self._clock()
        tokens = os.urandom(max_messages * _TOKEN_HEX // 2).hex()
        what = f"receive from queue {config.name!r}"
        reply = _list(
            self._run(
                self._receive_script,
                config.name,
                [now, now + timeout, config.max_receive_count, max_messages, tokens, int(config.fifo)],
                what,
            ),
            what,
        )
        arn = queue_arn(config.name)
        prefix = config.name + ":"
        records: list[SQSRecord] = []
        for n, at in enumerate(range(0, len(reply), _RECORD_FIELDS)):
            member, message_id, body, job_name, group_id, dedup_id, sent, count, first = reply[
                at : at + _RECORD_FIELDS
            ]
            text = _text(body)
            group = _opt_text(group_id)
            seq = _text(member)
            records.append(
                SQSRecord(
                    message_id=_text(message_id),
                    receipt_handle=prefix + seq + ":" + tokens[n * _TOKEN_HEX : (n + 1) * _TOKEN_HEX],
                    body=text,
                    attributes=SQSRecordAttributes(
                        approximate_receive_count=str(_int(count)),
                        sent_timestamp=_ms(float(_text(sent))),
                        sender_id=ACCOUNT_ID,
                        approximate_first_receive_timestamp=_ms(float(_text(first))),
                        message_group_id=group,
                        message_deduplication_id=_opt_text(dedup_id) if group is not None else None,
                        sequence_number=seq if group is not None else None,
                    ),
                    message_attributes=(
                        {ATTR_JOB_NAME: SQSMessageAttribute(data_type="String", string_value=_text(job_name))}
                        if job_name is not None
                        else {}
                    ),
                    md5_of_body=hashlib.md5(text.encode(), usedforsecurity=False).hexdigest(),
                    event_source="aws:sqs",
                    event_source_arn=arn,
                    aws_region=REGION,
                )
            )
        return records

    def delete(self, records: Sequence[SQSRecord]) -> list[str]:
        """Delete received records by receipt handle, one round trip.

        A stale handle (the message was received again since, or is already
        gone) deletes nothing and is not an error, as on SQS; unlike SQS, the
        driver tells which. A message that the same receive dead-lettered
        (the worker's `dead_letter`, or the redrive at `max_receive_count`)
        is not stale: it is where the worker meant it to be.

        Returns:
            The message ids whose receipt handle was stale (nothing deleted
            for them), in input order.

        Raises:
            DriverError: The server failed.
        """
        if not records:
            return []
        stale = self._by_handle(
            self._delete_script,
            [r.receipt_handle for r in records],
            [() for _ in records],
            self._clock(),
            f"delete {len(records)} messages",
        )
        return [records[i].message_id for i in stale]

    def _by_handle(
        self,
        script: Script,
        handles: Sequence[str],
        extra: Sequence[Sequence[_Arg]],
        now: float,
        what: str,
    ) -> list[int]:
        """Run a per-handle script, one call per queue in one round trip.

        Returns:
            The positions of the stale handles (foreign ones included), in input order.
        """
        stale: list[int] = []
        calls: dict[str, list[_Arg]] = {}
        positions: dict[str, list[int]] = {}
        for position, (handle, more) in enumerate(zip(handles, extra, strict=True)):
            parsed = _parse_handle(handle)
            if parsed is None:
                stale.append(position)
                continue
            queue, member, token = parsed
            if queue not in calls:
                calls[queue] = [now]
                positions[queue] = []
            calls[queue] += (member, token, *more)
            positions[queue].append(position)
        if calls:
            for queue, reply in self._run_per_queue(script, calls, what).items():
                stale += (positions[queue][_int(i) - 1] for i in _list(reply, what))
        return sorted(stale)

    # --- worker side ----------------------------------------------------------

    def dead_letter(self, record: SQSRecord, info: DeadLetterInfo) -> None:
        """Move a received message to the dead letters, atomically (one script).

        Stores the message's body with `info` and removes it from the queue.

        Raises:
            DriverError: The receipt handle is stale (the message was received
                again since, or is gone), or the server failed; nothing changed.
        """
        parsed = _parse_handle(record.receipt_handle)
        stale = (
            f"cannot dead-letter message {record.message_id}: its receipt handle is stale"
            " (received again since, or already deleted)"
        )
        if parsed is None:
            raise DriverError(stale)
        queue, member, token = parsed
        done = self._run(
            self._dead_letter_script,
            queue,
            [
                self._clock(),
                member,
                token,
                info.reason,
                info.error_type,
                info.error_message,
                info.attempt,
                _opt(info.job_name or None),
                _opt(info.job_id or None),
            ],
            f"dead-letter message {record.message_id}",
        )
        if _int(done) != 1:
            raise DriverError(stale)

    def change_visibility(self, changes: Sequence[VisibilityChange]) -> None:
        """Make received messages invisible for `seconds` more, counted from now.

        Valid changes are applied even when others fail.

        Raises:
            DriverError: A receipt handle is stale (names which); the others were applied.
        """
        if not changes:
            return
        now = self._clock()
        stale = [
            changes[i].message_id
            for i in self._by_handle(
                self._visibility_script,
                [c.receipt_handle for c in changes],
                [(now + max(c.seconds, 0),) for c in changes],
                now,
                f"change the visibility of {len(changes)} messages",
            )
        ]
        if stale:
            msg = (
                f"cannot change the visibility of {len(stale)} messages,"
                f" receipt handle stale: {', '.join(stale)}"
            )
            raise DriverError(msg)

    # --- admin ----------------------------------------------------------------

    def counts(self, queue: str | None = None) -> QueueCounts:
        """Visible, in-flight, delayed and dead-lettered message counts of a queue.

        One MULTI/EXEC: the five counts are of one instant.

        Raises:
            QueueNotFoundError: The queue name is not valid.
            DriverError: The server failed.
        """
        name = queue or self.default_queue
        _check_queue(name)
        self._check_open()
        new, recv, _seq, dead = self._queue_keys(name)[:4]
        now = self._clock()
        after = f"({now!r}"
        try:
            pipe = self._client.pipeline(transaction=True)
            pipe.zcount(new, "-inf", now)
            pipe.zcount(new, after, "+inf")
            pipe.zcount(recv, "-inf", now)
            pipe.zcount(recv, after, "+inf")
            pipe.zcard(dead)
            ready, delayed, again, in_flight, dead_count = (_int(v) for v in pipe.execute())
        except redis.RedisError as exc:
            raise _wrap(exc, f"count the messages of queue {name!r}") from exc
        return QueueCounts(visible=ready + again, in_flight=in_flight, delayed=delayed, dead=dead_count)

    def list_dead_letters(
        self, queue: str | None = None, *, limit: int = 100, job_name: str | None = None
    ) -> list[DeadLetterEntry]:
        """The dead letters of a queue, oldest first, in full.

        Args:
            queue: The queue; `None` for the default.
            limit: At most this many (a negative limit: every one).
            job_name: Only the dead letters of this job (`None`: every one).

        Raises:
            QueueNotFoundError: The queue name is not valid.
            DriverError: The server failed.
        """
        name = queue or self.default_queue
        _check_queue(name)
        if limit == 0:
            return []
        what = f"list the dead letters of queue {name!r}"
        reply = _list(
            self._run(self._list_dead_script, name, [_opt(job_name), limit - 1 if limit > 0 else -1], what),
            what,
        )
        entries: list[DeadLetterEntry] = []
        for at in range(0, len(reply), _DEAD_FIELDS):
            message_id, body, job, job_id, attempt, reason, error_type, error_message = reply[
                at : at + _DEAD_FIELDS
            ]
            entries.append(
                DeadLetterEntry(
                    message_id=_text(message_id),
                    body=_text(body),
                    job_name=_opt_text(job),
                    job_id=_opt_text(job_id),
                    attempt=None if attempt is None else _int(attempt),
                    reason=_opt_text(reason),
                    error_type=_opt_text(error_type),
                    error_message=_opt_text(error_message),
                )
            )
        return entries

    def redrive(
        self, queue: str | None = None, *, job_name: str | None = None, limit: int | None = None
    ) -> int:
        """Move dead letters of a queue back to it, oldest first, visible now, receive count 0.

        One script: every selected dead letter moves, or none.

        Args:
            queue: The queue; `None` for the default.
            job_name: Only the dead letters of this job (`None`: every one).
            limit: At most this many (`None`: every one selected).

        Returns:
            How many messages moved.

        Raises:
            QueueNotFoundError: The queue name is not valid.
            DriverError: The server failed; nothing moved.
        """
        name = queue or self.default_queue
        _check_queue(name)
        if limit == 0:
            return 0
        last = -1 if limit is None or limit < 0 else limit - 1
        moved = self._run(
            self._redrive_script,
            name,
            [self._clock(), _opt(job_name), last],
            f"redrive the dead letters of queue {name!r}",
        )
        return _int(moved)

    def purge(self, queue: str | None = None) -> int:
        """Delete every message of a queue (not its dead letters) and forget its deduplication ids.

        Returns:
            How many messages were deleted.

        Raises:
            QueueNotFoundError: The queue name is not valid.
            DriverError: The server failed.
        """
        name = queue or self.default_queue
        _check_queue(name)
        return _int(self._run(self._purge_script, name, [], f"purge queue {name!r}"))

    def purge_dead_letters(self, queue: str | None = None) -> int:
        """Delete every dead letter of a queue.

        Returns:
            How many dead letters were deleted.

        Raises:
            QueueNotFoundError: The queue name is not valid.
            DriverError: The server failed.
        """
        name = queue or self.default_queue
        _check_queue(name)
        return _int(self._run(self._purge_dead_script, name, [], f"purge the dead letters of queue {name!r}"))

    def queues(self) -> list[str]:
        """The names of the queues that hold messages or dead letters, sorted.

        Reads the registry of queue names (never the keyspace), then each
        queue's sizes in one pipelined round trip.

        Raises:
            DriverError: The server failed.
        """
        self._check_open()
        try:
            names = sorted(
                name
                for name in (_text(n) for n in self._client.smembers(self._registry))
                if _QUEUE_NAME.fullmatch(name)
            )
            if not names:
                return []
            pipe = self._client.pipeline(transaction=False)
            for name in names:
                new, recv, _seq, dead = self._queue_keys(name)[:4]
                pipe.zcard(new)
                pipe.zcard(recv)
                pipe.zcard(dead)
            sizes = [_int(v) for v in pipe.execute()]
        except redis.RedisError as exc:
            raise _wrap(exc, "list the queues") from exc
        return [name for n, name in enumerate(names) if sum(sizes[3 * n : 3 * n + 3]) > 0]
