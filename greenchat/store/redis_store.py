"""Accounts, registered channels and history on Redis (redis-py, hiredis for the parser):
the store for more than one server process (issue 16, "Scale out on Redis").

:class:`RedisStore` implements both protocols of :mod:`greenchat.store.base` with the
semantics of :class:`greenchat.store.sqlite.SqliteStore` (tests/contract runs both).
Each call is a Lua script, a pipeline, or a few of them: what must be atomic is one
script, which Redis runs with nothing in between. The URL may name one server or any
node of a Redis Cluster (``INFO cluster`` says which, at open); on a cluster each script
and MULTI stays within one slot, and what spans slots is split (below).

Key layout
----------

Every key starts with ``gc:<network>:`` (one Redis database may hold several
networks). With Redis Cluster in mind, keys that one operation touches together share
a hash tag (``{...}``), so that they sit in one slot: ``K`` below is
``gc:<network>:{r}:``, ``H`` is ``gc:<network>:{h:<target>}:``. Names are keyed by
their rfc1459 casefold (``<key>``, ``<ckey>``); records keep the name as registered.
A script names the keys it touches in KEYS, except the registry's, which derive theirs
from the records (a founder's channels) and stay in ``{r}``. Append takes a whole batch
(several conversations, parties, ``conversations``) in one script on one server; on a
cluster it is run once per slot, each with its part. The tags do not name the network:
on a cluster every network's registry shares the slot of ``{r}``, and conversations of
one name in two networks share theirs (the keys stay apart, the load does not).

The registry, all under ``{r}``: its operations cross records (a fingerprint names one
account; dropping an account takes the channels it founded and its entries in other
channels' access lists), they are rare, and one slot lets each be one atomic script.

==============================  ======  ==============================================
``K accounts``                  hash    account key -> name as registered (the index)
``K account:<key>``             hash    password_hash, scram_salt, scram_stored_key,
                                        scram_server_key, scram_iterations,
                                        registered_at, email, verified (0/1),
                                        verify_code
``K settings:<key>``            hash    NickServ SET name -> value
``K metadata:<key>``            hash    IRCv3 metadata key -> value
``K certfps:<key>``             list    the account's fingerprints, in the order added
``K certfp``                    hash    fingerprint -> account key (one account each)
``K channels``                  zset    channel key, scored by registration number
``K channel-count``             string  the last registration number (INCR)
``K channel:<ckey>``            hash    name, founder, founder_key, registered_at,
                                        topic, topic_setter, topic_time, modes, key,
                                        limit, bans (JSON ``[[mask, by, when]]``),
                                        exceptions (+e/+I: ``[[letter, mask, by,
                                        when]]``; missing in older records),
                                        metadata (JSON ``{key: value}``; ditto)
``K access:<ckey>``             hash    account key -> JSON ``[name, modes]``
``K founded:<key>``             set     keys of the channels ``<key>`` founded
``K listed:<key>``              set     keys of the channels whose access lists it
==============================  ======  ==============================================

History, one hash tag per conversation (``<target>`` as the server keys it; its
lines are written and read together, and conversations spread over the slots):

==============================  ======  ==============================================
``H seq``                       string  a counter earlier versions numbered lines by
                                        (deleted with the conversation's last line)
``H msgids``                    hash    msgid -> seq (a bound or REDACT in O(1))
``H times``                     zset    seq zero-padded to 16 digits, scored by time
                                        (time bounds, windows, expiry; padded so that
                                        lines of one time sort by seq)
``H msg``                       zset    PRIVMSG, NOTICE and TAGMSG lines, scored by seq
``H evt``                       zset    the other lines (JOIN, PART, ...), by seq
==============================  ======  ==============================================

A line is a member of ``msg`` or ``evt``: the JSON array ``[seq, msgid, time,
command, source, account, params, tags]`` (unique, as seq is). Two sets, not one:
``messages_only`` pages read ``msg`` alone, however many events lie between.

Outside any one conversation (single keys, each a slot of its own):

==============================  ======  ==============================================
``gc:<n>:conversations``        zset    every stored conversation, scored by a time no
                                        later than its oldest line (expiry by age)
``gc:<n>:{p:<party>}:dms``      set     the private conversations of a party
``gc:<n>:{m:<key>}:markers``    hash    an account's read markers: target -> time
==============================  ======  ==============================================

Beyond SqliteStore
------------------

* ``seq`` is the writer's proposal (HistoryItem), unique per conversation (one taken
  already moves up to the next free one): a total order of each conversation's
  lines (all that CHATHISTORY and the contract compare), the order of their events'
  times even when the nodes' batches reach Redis in another order.
* A batch is one script (one round trip, atomic on one server). A line whose msgid
  its conversation has already is skipped: a batch sent again after a timeout whose
  write went through after all stores nothing twice.
* On a cluster a batch is split by slot (``keyslot`` of each conversation's keys, each
  party's set): a script per slot with its conversations' lines (in the batch's order,
  seq proposals and msgid dedupe as above: a conversation is never split) and its
  parties' sets, sent as one pipeline per primary; then the part of ``conversations``
  (with whatever shares its slot), after every line it scores. Each part is atomic,
  the batch is not: a failure part-way leaves some parts stored, and the batch sent
  again stores nothing twice. A few round trips (one per primary, one more), not one.
* Calls that read many conversations (``history_targets``, counting for the trim)
  go a pipeline per primary on a cluster, straight to the node: redis-py's cluster
  pipeline would send a command again, one by one, after a timeout. A command that
  node refused unrun (MOVED, ASK, TRYAGAIN, NOSCRIPT) goes again through the cluster
  client, which follows the slot; a MULTI read of ``{r}`` that finds its slot moved is
  read once more.
* Time bounds find their seq through ``times``: exact, as times rise with seq.
* Expiry by age takes conversation by conversation, the one with the oldest line
  first, and trimming to ``keep_per_target`` counts every conversation (``ZCARD``,
  pipelined): which lines one call takes may differ from SqliteStore's (the oldest
  by seq), a pass (calls until one takes less than ``batch``) ends the same.
* :meth:`RedisStore.drop_account` deletes the read markers after the registry
  script, in a call of their own (another slot).

Failures underneath (no connection, a timeout, Redis loading, read-only, out of
memory, a cluster down or moving keys, no node reachable, ...) raise
:class:`StoreUnavailable` with the cause in words; opening raises :class:`StoreError`
if Redis cannot be reached or is older than 6.2 (``ZADD LT``, ``ZRANGE BYSCORE``; on a
cluster, any primary). Calls are not retried: after a timeout, Redis may still make
the write (the connection is dropped, not the command). A batch is safe to send again
(above); a registration sent again finds the account it made (AccountExists). The
cluster client is made with no retries too (redis-py's ``retry``; its
``cluster_error_retry_attempts`` is ignored then): it follows MOVED and ASK and waits
out TRYAGAIN, which the server answers without running the command, and raises a lost
connection or a timeout at once, after refreshing its map of the slots (asking the
other nodes first: a call may take a little more than ``SOCKET_TIMEOUT`` then).
redis-py's cluster client drops ``health_check_interval``: a connection that died
idle fails the one call that finds it. Scripts are loaded on every primary at open,
and on all again after a NOSCRIPT (a failover to a replica, a restart, a flush).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import NamedTuple
from urllib.parse import urlsplit

import redis
from redis import exceptions as rx
from redis.backoff import NoBackoff
from redis.client import Pipeline
from redis.cluster import ClusterNode
from redis.retry import Retry

from greenchat.protocol.casemap import casefold
from greenchat.store.base import (
    PRIVATE_PREFIX,
    Account,
    AccountExists,
    ChannelExists,
    Credentials,
    HistoryBound,
    HistoryItem,
    RegisteredChannel,
    StoreError,
    StoreUnavailable,
    proposed_seq,
)

__all__ = ["MIN_REDIS", "Keys", "RedisStore", "hash_tag", "unavailable_cause"]

# Short: a store call blocks the storage thread, and the server answers "try again
# later" sooner than a client gives up.
SOCKET_TIMEOUT = 2.0
# A pooled connection idle this long is PINGed before use (a peer gone silently).
HEALTH_CHECK_INTERVAL = 15
MIN_REDIS = (6, 2, 0)  # ZADD LT, ZRANGE ... BYSCORE REV LIMIT
MESSAGE_COMMANDS = frozenset({"PRIVMSG", "NOTICE", "TAGMSG"})  # CHATHISTORY without events
PAGE = 500  # conversations counted per round trip when trimming to keep_per_target


# -- keys ------------------------------------------------------------------------------


def hash_tag(key: str) -> str:
    """The part of ``key`` Redis Cluster hashes: between the first ``{`` and the first
    ``}`` after it, if not empty; else the whole key."""
    start = key.find("{")
    if start >= 0:
        end = key.find("}", start + 1)
        if end > start + 1:
            return key[start + 1 : end]
    return key


class Keys:
    """Key names of one network (the module's docstring has the layout)."""

    def __init__(self, network: str) -> None:
        if not network or any(c in network for c in "{}: \r\n"):
            raise ValueError(f"a network name without braces, colons or spaces: {network!r}")
        self.prefix = f"gc:{network}:"
        self.registry = f"{self.prefix}{{r}}:"  # the prefix of every registry key
        self.accounts = self.registry + "accounts"  # routes the registry's scripts
        self.conversations = self.prefix + "conversations"

    def account(self, key: str) -> str:
        return f"{self.registry}account:{key}"

    def certfps(self, key: str) -> str:
        return f"{self.registry}certfps:{key}"

    def settings(self, key: str) -> str:
        return f"{self.registry}settings:{key}"

    def metadata(self, key: str) -> str:
        return f"{self.registry}metadata:{key}"

    @property
    def certfp(self) -> str:
        return self.registry + "certfp"

    @property
    def channels(self) -> str:
        return self.registry + "channels"

    def channel(self, key: str) -> str:
        return f"{self.registry}channel:{key}"

    def access(self, key: str) -> str:
        return f"{self.registry}access:{key}"

    def conversation(self, target: str) -> tuple[str, str, str, str, str]:
        """seq, msgids, times, msg, evt: the KEYS of every history script, in order."""
        base = f"{self.prefix}{{h:{target}}}:"
        return (base + "seq", base + "msgids", base + "times", base + "msg", base + "evt")

    def times(self, target: str) -> str:
        return self.conversation(target)[2]

    def dms(self, party: str) -> str:
        return f"{self.prefix}{{p:{party}}}:dms"

    def markers(self, account_key: str) -> str:
        return f"{self.prefix}{{m:{account_key}}}:markers"


# -- errors ----------------------------------------------------------------------------

# Error codes of a server that cannot serve now, and what they mean to an operator.
_UNAVAILABLE_CODES = {
    "OOM": "Redis is out of memory (maxmemory)",
    "READONLY": "Redis is a read-only replica",
    "LOADING": "Redis is loading its data set",
    "MISCONF": "Redis refuses writes: it cannot save its snapshot",
    "BUSY": "Redis is busy running a script",
    "NOREPLICAS": "Redis has not enough replicas to write",
    "MASTERDOWN": "the Redis master is down",
    "CLUSTERDOWN": "the Redis cluster is down",
    "TRYAGAIN": "the Redis cluster is moving keys",
    "NOPERM": "the Redis user may not run this command",
    "NOSCRIPT": "Redis lost its scripts (flushed meanwhile?)",
}


def _one_line(text: str, limit: int = 300) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _code_and_text(exc: rx.ResponseError) -> tuple[str, str]:
    """The error code and the rest: redis-py keeps the code aside for the ones it
    knows (status_code) and in the text for the others."""
    text = str(exc)
    code = getattr(exc, "status_code", None)
    if code:
        return code, text
    first, _, rest = text.partition(" ")
    return (first, rest) if first.isupper() else ("", text)


# What redis-py's cluster client says (RedisClusterException, not a RedisError) when
# it cannot map the slots, and what that means to an operator.
_CLUSTER_TROUBLE = {
    "cannot be connected": "cannot reach any node of the Redis cluster",
    "not covered": "the Redis cluster does not serve every slot",
    "could not agree": "the Redis cluster's nodes disagree on who serves a slot",
}


def unavailable_cause(exc: rx.RedisError | rx.RedisClusterException) -> str | None:
    """StoreUnavailable's text for a failure underneath; None for a bug (a wrong type,
    a syntax error, keys of two slots in one call), which goes up as it is."""
    text = _one_line(str(exc))
    if isinstance(exc, rx.RedisClusterException):
        found = [words for phrase, words in _CLUSTER_TROUBLE.items() if phrase in text]
        return f"{found[0]} ({text})" if found else None
    if isinstance(exc, rx.AskError):  # MOVED too; its text may quote a pipeline's command
        return f"the Redis cluster is moving keys (slot {exc.slot_id} to {exc.host}:{exc.port})"
    if isinstance(exc, rx.ClusterError) and not isinstance(exc, rx.ResponseError):
        return f"the Redis cluster kept redirecting the call ({text})"  # TTL exhausted
    if isinstance(exc, rx.TimeoutError):
        return f"Redis did not answer within {SOCKET_TIMEOUT:g} s ({text})"
    if isinstance(exc, rx.BusyLoadingError):
        return f"Redis is loading its data set ({text})"
    if isinstance(exc, rx.AuthenticationError):
        return f"Redis refused the credentials ({text})"
    if isinstance(exc, rx.ConnectionError):
        return f"cannot reach Redis ({text})"
    if isinstance(exc, rx.ResponseError):
        code, rest = _code_and_text(exc)
        if code in _UNAVAILABLE_CODES:
            return f"{_UNAVAILABLE_CODES[code]} ({code} {_one_line(rest)})"
    return None


def _where(url: str) -> str:
    """``url`` for messages, without a password."""
    parts = urlsplit(url)
    if parts.scheme == "unix":
        return f"unix://{parts.path}"
    host = parts.netloc.rpartition("@")[2] or "localhost"
    return f"{parts.scheme}://{host}{parts.path}"


# -- scripts ---------------------------------------------------------------------------

# Helpers for the registry's scripts: ARGV[1] is the registry's key prefix (K).
_REGISTRY_LUA = """
local p = ARGV[1]
local function hset_pairs(key, from, count)
  if count > 0 then redis.call('HSET', key, unpack(ARGV, from, from + 2 * count - 1)) end
end
local function unlink_channel(ck)
  local fk = redis.call('HGET', p .. 'channel:' .. ck, 'founder_key')
  if fk then redis.call('SREM', p .. 'founded:' .. fk, ck) end
  for _, ak in ipairs(redis.call('HKEYS', p .. 'access:' .. ck)) do
    redis.call('SREM', p .. 'listed:' .. ak, ck)
  end
  redis.call('DEL', p .. 'access:' .. ck)
end
-- founder key fk; access entries (account key, JSON) from ARGV[from] to the end
local function link_channel(ck, fk, from)
  redis.call('SADD', p .. 'founded:' .. fk, ck)
  for i = from, #ARGV, 2 do
    redis.call('HSET', p .. 'access:' .. ck, ARGV[i], ARGV[i + 1])
    redis.call('SADD', p .. 'listed:' .. ARGV[i], ck)
  end
end
local function drop_channel(ck)
  unlink_channel(ck)
  redis.call('DEL', p .. 'channel:' .. ck)
  redis.call('ZREM', p .. 'channels', ck)
end
"""

# ARGV: K, key, name, n, n field/value pairs, c, c fingerprints, setting/value pairs.
_CREATE_ACCOUNT = """
local key = ARGV[2]
if redis.call('HSETNX', p .. 'accounts', key, ARGV[3]) == 0 then return 0 end
redis.call('DEL', p .. 'account:' .. key, p .. 'settings:' .. key, p .. 'certfps:' .. key,
  p .. 'metadata:' .. key)
local nf = tonumber(ARGV[4])
hset_pairs(p .. 'account:' .. key, 5, nf)
local at = 5 + 2 * nf
local nc = tonumber(ARGV[at])
for i = at + 1, at + nc do
  if redis.call('HSETNX', p .. 'certfp', ARGV[i], key) == 1 then
    redis.call('RPUSH', p .. 'certfps:' .. key, ARGV[i])
  end
end
for i = at + nc + 1, #ARGV, 2 do
  redis.call('HSET', p .. 'settings:' .. key, ARGV[i], ARGV[i + 1])
end
return 1
"""

# ARGV: K, key, field/value pairs.
_UPDATE_ACCOUNT = """
if redis.call('HEXISTS', p .. 'accounts', ARGV[2]) == 0 then return 0 end
hset_pairs(p .. 'account:' .. ARGV[2], 3, (#ARGV - 2) / 2)
return 1
"""

# ARGV: K, key, fingerprint.
_ADD_CERTFP = """
if redis.call('HEXISTS', p .. 'accounts', ARGV[2]) == 0 then return 0 end
if redis.call('HSETNX', p .. 'certfp', ARGV[3], ARGV[2]) == 0 then return 0 end
redis.call('RPUSH', p .. 'certfps:' .. ARGV[2], ARGV[3])
return 1
"""

_REMOVE_CERTFP = """
if redis.call('HGET', p .. 'certfp', ARGV[3]) ~= ARGV[2] then return 0 end
redis.call('HDEL', p .. 'certfp', ARGV[3])
redis.call('LREM', p .. 'certfps:' .. ARGV[2], 0, ARGV[3])
return 1
"""

# ARGV: K, key, setting, value ('' removes it).
_SET_SETTING = """
if redis.call('HEXISTS', p .. 'accounts', ARGV[2]) == 0 then return 0 end
if ARGV[4] == '' then redis.call('HDEL', p .. 'settings:' .. ARGV[2], ARGV[3])
else redis.call('HSET', p .. 'settings:' .. ARGV[2], ARGV[3], ARGV[4]) end
return 1
"""

# ARGV: K, key, then triples: 's' (set) or 'd' (delete), metadata key, value.
_SET_METADATA = """
if redis.call('HEXISTS', p .. 'accounts', ARGV[2]) == 0 then return 0 end
local hash = p .. 'metadata:' .. ARGV[2]
for i = 3, #ARGV, 3 do
  if ARGV[i] == 'd' then redis.call('HDEL', hash, ARGV[i + 1])
  else redis.call('HSET', hash, ARGV[i + 1], ARGV[i + 2]) end
end
return 1
"""

# ARGV: K, key.
_DROP_ACCOUNT = """
local key = ARGV[2]
if redis.call('HDEL', p .. 'accounts', key) == 0 then return 0 end
for _, ck in ipairs(redis.call('SMEMBERS', p .. 'founded:' .. key)) do drop_channel(ck) end
for _, ck in ipairs(redis.call('SMEMBERS', p .. 'listed:' .. key)) do
  redis.call('HDEL', p .. 'access:' .. ck, key)
end
for _, fp in ipairs(redis.call('LRANGE', p .. 'certfps:' .. key, 0, -1)) do
  if redis.call('HGET', p .. 'certfp', fp) == key then redis.call('HDEL', p .. 'certfp', fp) end
end
redis.call('DEL', p .. 'account:' .. key, p .. 'settings:' .. key, p .. 'certfps:' .. key,
  p .. 'founded:' .. key, p .. 'listed:' .. key, p .. 'metadata:' .. key)
return 1
"""

# ARGV: K, channel key, founder key, n, n field/value pairs, access key/JSON pairs.
_REGISTER_CHANNEL = """
local ck = ARGV[2]
if redis.call('ZSCORE', p .. 'channels', ck) then return 0 end
redis.call('ZADD', p .. 'channels', redis.call('INCR', p .. 'channel-count'), ck)
redis.call('DEL', p .. 'channel:' .. ck, p .. 'access:' .. ck)
local nf = tonumber(ARGV[4])
hset_pairs(p .. 'channel:' .. ck, 5, nf)
link_channel(ck, ARGV[3], 5 + 2 * nf)
return 1
"""

_UPDATE_CHANNEL = """
local ck = ARGV[2]
if not redis.call('ZSCORE', p .. 'channels', ck) then return 0 end
unlink_channel(ck)
local nf = tonumber(ARGV[4])
hset_pairs(p .. 'channel:' .. ck, 5, nf)
link_channel(ck, ARGV[3], 5 + 2 * nf)
return 1
"""

# ARGV: K, channel key.
_DROP_CHANNEL = """
if not redis.call('ZSCORE', p .. 'channels', ARGV[2]) then return 0 end
drop_channel(ARGV[2])
return 1
"""

# KEYS[1]: an account's markers; ARGV: target, time. A marker never goes back.
_SET_READ_MARKER = """
local now = redis.call('HGET', KEYS[1], ARGV[1])
if now and tonumber(now) >= tonumber(ARGV[2]) then return now end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
return ARGV[2]
"""

# Helpers for the history scripts. KEYS: seq, msgids, times, msg, evt (Keys.conversation).
_HISTORY_LUA = """
local function pad(seq) return string.format('%016d', seq) end
-- Delete the line numbered seq, wherever it is.
local function remove(seq)
  local s = string.format('%d', seq)
  redis.call('ZREM', KEYS[3], pad(seq))
  for k = 4, 5 do
    local found = redis.call('ZRANGE', KEYS[k], s, s, 'BYSCORE')
    if #found > 0 then
      redis.call('ZREMRANGEBYSCORE', KEYS[k], s, s)
      local msgid = cjson.decode(found[1])[2]
      if redis.call('HGET', KEYS[2], msgid) == s then redis.call('HDEL', KEYS[2], msgid) end
      return
    end
  end
end
-- A conversation left with no line loses its counter too (a new line starts at 1).
local function tidy()
  if redis.call('ZCARD', KEYS[3]) == 0 then redis.call('DEL', KEYS[1], KEYS[2]) end
end
"""

# A batch: its conversations' lines, the parties' sets of private conversations, and
# the conversations' scores in ``conversations``. KEYS: 5 per conversation (as
# Keys.conversation), then a party set each, then ``conversations``. ARGV: the counts
# of the three, then per conversation its count of lines and for each line its
# msgid, time, proposed seq, 'm' or 'e', and JSON array after the seq; per party set
# its count and conversations; then score, conversation pairs for ZADD LT.
# A msgid the conversation has already is a line stored by an earlier try: skipped.
# Reads first, then a few variadic writes: a call into Redis per line would cost more
# than the line. On one server the whole batch is one script; on a cluster it runs once
# per slot, each with its part (RedisStore._append_by_slot; every key is declared).
_APPEND = """
local function many(cmd, key, list, from, to, extra)
  for i = from, to, 1000 do
    if extra then redis.call(cmd, key, extra, unpack(list, i, math.min(i + 999, to)))
    else redis.call(cmd, key, unpack(list, i, math.min(i + 999, to))) end
  end
end
-- The `count` lines from ARGV[a] into the conversation of KEYS[k + 1 .. k + 5].
local function append(k, a, count)
  local ids, have = {}, {}
  for i = 1, count do ids[i] = ARGV[a + 5 * i - 5] end
  for i = 1, count, 1000 do
    local got = redis.call('HMGET', KEYS[k + 2], unpack(ids, i, math.min(i + 999, count)))
    for j = 1, #got do have[i + j - 1] = got[j] end
  end
  -- Each new line's proposed seq (see HistoryItem), and whether the conversation has
  -- it already: one ZMSCORE for them all.
  local fresh, want = {}, {}
  for i = 1, count do
    local msgid = ids[i]
    if msgid == '' or not (have[i] or fresh[msgid]) then
      if msgid ~= '' then fresh[msgid] = true end
      want[#want + 1] = {i, tonumber(ARGV[a + 5 * i - 3])}
    end
  end
  local busy = {}
  for i = 1, #want, 1000 do
    local padded = {}
    for j = i, math.min(i + 999, #want) do padded[#padded + 1] = pad(want[j][2]) end
    local got = redis.call('ZMSCORE', KEYS[k + 3], unpack(padded))
    for j = 1, #padded do busy[want[i + j - 1][2]] = got[j] and true or false end
  end
  local function taken(s)
    if busy[s] == nil then busy[s] = redis.call('ZSCORE', KEYS[k + 3], pad(s)) and true or false end
    return busy[s]
  end
  -- Field/member pairs of msgids, times, msg, evt; seqs as integers in text (Lua's
  -- own number to text would write 1.8e+15). A batch's lines keep their order.
  local out, prev = {{}, {}, {}, {}}, -1
  for _, w in ipairs(want) do
    local i, s = w[1], math.max(w[2], prev + 1)
    while taken(s) do s = s + 1 end
    busy[s], prev = true, s
    local j, msgid, seq = a + 5 * i - 5, ids[i], string.format('%d', s)
    local t = out[1]
    if msgid ~= '' then t[#t + 1] = msgid; t[#t + 1] = seq end
    t = out[2]
    t[#t + 1] = ARGV[j + 1]; t[#t + 1] = pad(s)
    t = ARGV[j + 3] == 'm' and out[3] or out[4]
    t[#t + 1] = seq; t[#t + 1] = '[' .. seq .. ',' .. ARGV[j + 4]
  end
  for t = 1, 4 do many(t == 1 and 'HSET' or 'ZADD', KEYS[k + t + 1], out[t], 1, #out[t]) end
end
local nconv, nparty, nscore = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local a = 4
for c = 0, nconv - 1 do
  local count = tonumber(ARGV[a])
  append(5 * c, a + 1, count)
  a = a + 1 + 5 * count
end
for q = 1, nparty do
  local count = tonumber(ARGV[a])
  many('SADD', KEYS[5 * nconv + q], ARGV, a + 1, a + count)
  a = a + 1 + count
end
if nscore > 0 then many('ZADD', KEYS[5 * nconv + nparty + 1], ARGV, a, #ARGV, 'LT') end
return 0
"""

# ARGV: limit, latest (1/0), messages only (1/0), then for after, before and not
# before a kind ('' none, 'm' msgid, 't' time) and a value -> lines, in page order.
# The bounds become a range of seq [lo, hi]; time bounds are also checked line by line.
_HISTORY = """
local limit, latest = tonumber(ARGV[1]), ARGV[2] == '1'
if limit < 1 then return {} end
local lo, hi = 1, math.huge
local after, before, since = {ARGV[4], ARGV[5]}, {ARGV[6], ARGV[7]}, {ARGV[8], ARGV[9]}
local function first_by_time(min, max, rev)
  local cmd = rev and {'ZRANGE', KEYS[3], max, min, 'BYSCORE', 'REV', 'LIMIT', 0, 1}
    or {'ZRANGE', KEYS[3], min, max, 'BYSCORE', 'LIMIT', 0, 1}
  local found = redis.call(unpack(cmd))
  return found[1] and tonumber(found[1])
end
local function by_msgid(msgid)
  local s = redis.call('HGET', KEYS[2], msgid)
  return s and tonumber(s)
end
local s
if after[1] == 'm' then s = by_msgid(after[2]); lo = s and s + 1
elseif after[1] == 't' then lo = first_by_time('(' .. after[2], '+inf', false) end
if since[1] == 't' and lo then
  s = first_by_time(since[2], '+inf', false); lo = s and math.max(lo, s)
end
if before[1] == 'm' then s = by_msgid(before[2]); hi = s and s - 1
elseif before[1] == 't' then hi = first_by_time('-inf', '(' .. before[2], true) end
if not lo or not hi or lo > hi then return {} end
local function fits(seq)
  if after[1] ~= 't' and before[1] ~= 't' and since[1] ~= 't' then return true end
  local t = tonumber(redis.call('ZSCORE', KEYS[3], pad(seq)))
  return not ((after[1] == 't' and t <= tonumber(after[2]))
    or (before[1] == 't' and t >= tonumber(before[2]))
    or (since[1] == 't' and t < tonumber(since[2])))
end
local function bound(x) return x == math.huge and '+inf' or string.format('%d', x) end
local function cursor(key) return {key = key, lo = lo, hi = hi, buf = {}, i = 1} end
-- The cursor's next line and its seq, reading `limit` at a time toward the page's end.
local function head(c)
  if c.i > #c.buf then
    if c.lo > c.hi then return nil end
    c.buf = latest
      and redis.call('ZRANGE', c.key, bound(c.hi), bound(c.lo), 'BYSCORE', 'REV',
        'LIMIT', 0, limit, 'WITHSCORES')
      or redis.call('ZRANGE', c.key, bound(c.lo), bound(c.hi), 'BYSCORE',
        'LIMIT', 0, limit, 'WITHSCORES')
    c.i = 1
    if #c.buf == 0 then c.lo, c.hi = 1, 0; return nil end
    local last = tonumber(c.buf[#c.buf])
    if latest then c.hi = last - 1 else c.lo = last + 1 end
  end
  return c.buf[c.i], tonumber(c.buf[c.i + 1])
end
local cursors = {cursor(KEYS[4])}
if ARGV[3] ~= '1' then cursors[2] = cursor(KEYS[5]) end
local out = {}
while #out < limit do
  local best, line, seq
  for _, c in ipairs(cursors) do
    local l, q = head(c)
    if l and (not best or (latest and q > seq) or (not latest and q < seq)) then
      best, line, seq = c, l, q
    end
  end
  if not best then break end
  best.i = best.i + 2
  if fits(seq) then out[#out + 1] = line end
end
return out
"""

# ARGV: msgid -> the line, or nil.
_HISTORY_ITEM = """
local s = redis.call('HGET', KEYS[2], ARGV[1])
if not s then return false end
for k = 4, 5 do
  local found = redis.call('ZRANGE', KEYS[k], s, s, 'BYSCORE')
  if #found > 0 then return found[1] end
end
return false
"""

# ARGV: msgid -> 1 if deleted.
_DELETE_HISTORY = """
local s = redis.call('HGET', KEYS[2], ARGV[1])
if not s then return 0 end
remove(tonumber(s))
tidy()
return 1
"""

# ARGV: older than, at most -> lines deleted (the oldest first).
_EXPIRE_OLD = """
local old = redis.call('ZRANGE', KEYS[3], '-inf', '(' .. ARGV[1], 'BYSCORE',
  'LIMIT', 0, tonumber(ARGV[2]))
for _, padded in ipairs(old) do remove(tonumber(padded)) end
tidy()
return #old
"""

# ARGV: keep, at most -> lines deleted: the lowest seqs beyond the newest `keep`.
_TRIM = """
local n = math.min(redis.call('ZCARD', KEYS[3]) - tonumber(ARGV[1]), tonumber(ARGV[2]))
if n <= 0 then return 0 end
local seqs = {}
for k = 4, 5 do
  local got = redis.call('ZRANGE', KEYS[k], 0, n - 1, 'WITHSCORES')
  for i = 2, #got, 2 do seqs[#seqs + 1] = tonumber(got[i]) end
end
table.sort(seqs)
for i = 1, n do remove(seqs[i]) end
return n
"""


class _Script:
    """A Lua script run by its SHA1 (EVALSHA): the text goes to Redis once, at open,
    and again only if Redis lost it (NOSCRIPT)."""

    def __init__(self, *parts: str) -> None:
        self.text = "\n".join(parts)
        self.sha = hashlib.sha1(self.text.encode()).hexdigest()


_SCRIPTS = {
    "create_account": _Script(_REGISTRY_LUA, _CREATE_ACCOUNT),
    "update_account": _Script(_REGISTRY_LUA, _UPDATE_ACCOUNT),
    "add_certfp": _Script(_REGISTRY_LUA, _ADD_CERTFP),
    "remove_certfp": _Script(_REGISTRY_LUA, _REMOVE_CERTFP),
    "set_setting": _Script(_REGISTRY_LUA, _SET_SETTING),
    "set_metadata": _Script(_REGISTRY_LUA, _SET_METADATA),
    "drop_account": _Script(_REGISTRY_LUA, _DROP_ACCOUNT),
    "register_channel": _Script(_REGISTRY_LUA, _REGISTER_CHANNEL),
    "update_channel": _Script(_REGISTRY_LUA, _UPDATE_CHANNEL),
    "drop_channel": _Script(_REGISTRY_LUA, _DROP_CHANNEL),
    "set_read_marker": _Script(_SET_READ_MARKER),
    "append": _Script(_HISTORY_LUA, _APPEND),
    "history": _Script(_HISTORY_LUA, _HISTORY),
    "history_item": _Script(_HISTORY_LUA, _HISTORY_ITEM),
    "delete_history": _Script(_HISTORY_LUA, _DELETE_HISTORY),
    "expire_old": _Script(_HISTORY_LUA, _EXPIRE_OLD),
    "trim": _Script(_HISTORY_LUA, _TRIM),
}


# -- records <-> fields ----------------------------------------------------------------


def _pairs(fields: dict) -> list:
    """A dict as the flat field, value, ... list the scripts take, counted first."""
    return [len(fields), *(x for pair in fields.items() for x in pair)]


def _credential_fields(c: Credentials) -> dict:
    return {
        "password_hash": c.password_hash,
        "scram_salt": c.scram_salt,
        "scram_stored_key": c.scram_stored_key,
        "scram_server_key": c.scram_server_key,
        "scram_iterations": c.scram_iterations,
    }


def _account_fields(a: Account) -> dict:
    return _credential_fields(a.credentials) | {
        "registered_at": a.registered_at,
        "email": a.email,
        "verified": int(a.verified),
        "verify_code": a.verify_code,
    }


def _account(name: bytes, fields: dict, certfps: list, settings: dict) -> Account:
    text = {k.decode(): v for k, v in fields.items()}
    return Account(
        name=name.decode(),
        credentials=Credentials(
            password_hash=text["password_hash"].decode(),
            scram_salt=text["scram_salt"],
            scram_stored_key=text["scram_stored_key"],
            scram_server_key=text["scram_server_key"],
            scram_iterations=int(text["scram_iterations"]),
        ),
        registered_at=float(text["registered_at"]),
        email=text["email"].decode(),
        verified=text["verified"] == b"1",
        verify_code=text["verify_code"].decode(),
        certfps=tuple(fp.decode() for fp in certfps),
        settings={k.decode(): v.decode() for k, v in settings.items()},
    )


def _channel_fields(c: RegisteredChannel) -> dict:
    """Every field but the name (kept as registered by update_channel)."""
    return {
        "founder": c.founder,
        "founder_key": casefold(c.founder),
        "registered_at": c.registered_at,
        "topic": c.topic,
        "topic_setter": c.topic_setter,
        "topic_time": c.topic_time,
        "modes": c.modes,
        "key": c.key,
        "limit": c.limit,
        "bans": json.dumps([list(ban) for ban in c.bans], ensure_ascii=False),
        "exceptions": json.dumps([list(entry) for entry in c.exceptions], ensure_ascii=False),
        "metadata": json.dumps(c.metadata, ensure_ascii=False),
    }


def _channel_args(c: RegisteredChannel, fields: dict) -> list:
    """ARGV after K for register_channel and update_channel."""
    access = {casefold(name): json.dumps([name, modes]) for name, modes in c.access.items()}
    pairs = [x for pair in access.items() for x in pair]
    return [casefold(c.name), casefold(c.founder), *_pairs(fields), *pairs]


def _channel(fields: dict, access: list) -> RegisteredChannel:
    f = {k.decode(): v.decode() for k, v in fields.items()}
    return RegisteredChannel(
        name=f["name"],
        founder=f["founder"],
        registered_at=float(f["registered_at"]),
        topic=f["topic"],
        topic_setter=f["topic_setter"],
        topic_time=float(f["topic_time"]),
        modes=f["modes"],
        key=f["key"],
        limit=int(f["limit"]),
        bans=tuple((mask, by, float(when)) for mask, by, when in json.loads(f["bans"])),
        exceptions=_exceptions(f.get("exceptions", "[]")),  # none in a record made before
        metadata=json.loads(f.get("metadata", "{}")),
        access=dict(json.loads(entry) for entry in access),
    )


def _exceptions(text: str) -> tuple[tuple[str, str, str, float], ...]:
    return tuple((char, mask, by, float(when)) for char, mask, by, when in json.loads(text))


# Made once: json.dumps with options builds an encoder per call.
_encode = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode


def _line_args(item: HistoryItem) -> tuple:
    """What the append script takes of one line: its JSON array without the seq."""
    rest = _encode(
        [item.msgid, item.time, item.command, item.source, item.account, item.params, item.tags]
    )
    kind = "m" if item.command in MESSAGE_COMMANDS else "e"
    return item.msgid, item.time, proposed_seq(item), kind, rest[1:]


def _lines(target: str, found: list[bytes]) -> list[HistoryItem]:
    """Stored lines (JSON arrays) as records, in seq order; one JSON text to decode."""
    rows = json.loads(b"[" + b",".join(found) + b"]") if found else []
    items = [
        HistoryItem(target, msgid, when, command, source, account, tuple(params), tags, seq)
        for seq, msgid, when, command, source, account, params, tags in rows
    ]
    items.sort(key=lambda item: item.seq)
    return items


def _bound_args(bound: HistoryBound | None) -> list:
    if bound is None:
        return ["", ""]
    return ["m", bound.msgid] if bound.msgid else ["t", bound.time]


_Groups = dict[str, list[HistoryItem]]  # conversation -> its lines in a batch, in order
_Parties = dict[str, list[str]]  # party -> its private conversations in a batch


def _by_target(items: Sequence[HistoryItem]) -> _Groups:
    groups: _Groups = {}
    for item in items:
        groups.setdefault(item.target, []).append(item)
    return groups


def _by_party(groups: _Groups) -> _Parties:
    parties: _Parties = {}
    for target in groups:
        for party in _parties(target):
            parties.setdefault(party, []).append(target)
    return parties


def _parties(target: str) -> list[str]:
    if not target.startswith(PRIVATE_PREFIX):
        return []
    return target[len(PRIVATE_PREFIX) :].split(" ")


# -- the store -------------------------------------------------------------------------


Client = redis.Redis | redis.RedisCluster


class _Call(NamedTuple):
    """One command of a batch spread over a cluster's primaries: ``key`` says where it
    goes, ``method`` and ``args`` what any redis-py client or pipeline is asked."""

    key: str
    method: str
    args: tuple

    def to(self, target: Client | Pipeline):
        return getattr(target, self.method)(*self.args)


# A command that got these was not run: sending it again through the cluster client
# (which follows the redirection, or after the scripts are loaded) writes nothing twice.
_NOT_RUN = (rx.AskError, rx.TryAgainError, rx.NoScriptError)  # AskError: MOVED as well


def _cluster_enabled(client: redis.Redis) -> bool:
    try:
        return bool(int(client.info("cluster").get("cluster_enabled", 0)))
    except rx.NoPermissionError:  # a user without INFO: taken for one server
        return False


def _servers(client: Client) -> list[redis.Redis]:
    """A plain client of each server that runs the scripts: a cluster's primaries."""
    if isinstance(client, redis.RedisCluster):
        return [client.get_redis_connection(node) for node in client.get_primaries()]
    return [client]


def _by_node(client: redis.RedisCluster, calls: Sequence[_Call]) -> list[tuple[ClusterNode, list]]:
    """The primary of each call's key (as the client maps the slots now), and the
    indexes of the calls that go there."""
    nodes: dict[str, ClusterNode] = {}
    indexes: dict[str, list[int]] = {}
    for index, call in enumerate(calls):
        node = client.get_node_from_key(call.key)
        nodes[node.name] = node
        indexes.setdefault(node.name, []).append(index)
    return [(nodes[name], found) for name, found in indexes.items()]


def _refresh_slots(client: redis.RedisCluster, failed: ClusterNode) -> None:
    """What the cluster client does after a lost connection or a timeout, for a call of
    ours straight to a node: a node gone may mean its slots moved (a failover). The
    failed node is asked last, so a hung one costs no second timeout if others answer."""
    nodes = client.nodes_manager
    with contextlib.suppress(rx.RedisError, rx.RedisClusterException):
        nodes.move_node_to_end_of_cached_nodes(failed.name)
        nodes.initialize(last_failed_node_name=failed.name)


class RedisStore:
    """:class:`greenchat.store.base.AccountStore` and ``HistoryStore`` on Redis.

    ``url``: ``redis://host:port/db``, ``rediss://...`` (TLS) or
    ``unix:///path/to/socket?db=0``, with a password in it if Redis wants one; any
    node of a Redis Cluster (``redis://``, database 0) for the whole cluster.
    ``network``: the first part of every key. Opening connects, checks the version
    and loads the scripts (on every primary of a cluster): :class:`StoreError` if that
    fails. Thread-safe (connection pools), though the server makes every call from
    one thread.
    """

    def __init__(self, url: str, network: str = "greenchat") -> None:
        self.url, self.network = url, network
        self._redis: Client | None = None
        try:
            self.keys = Keys(network)
            self._connect(url)
            self._check_version(self._redis)
            self._load_scripts(self._redis)
        except (ValueError, rx.RedisError, rx.RedisClusterException) as exc:
            self.close()
            why = unavailable_cause(exc) or _one_line(str(exc))
            raise StoreError(f"cannot use Redis at {_where(url)}: {why}") from None
        except StoreError:
            self.close()
            raise

    def __repr__(self) -> str:
        return f"RedisStore({_where(self.url)!r}, network={self.network!r})"

    @property
    def cluster(self) -> bool:
        """Whether the store is on a Redis Cluster (so a batch is split by slot)."""
        return isinstance(self._redis, redis.RedisCluster)

    # -- plumbing --------------------------------------------------------------------

    def _connect(self, url: str) -> None:
        """A blocking client of the Redis at ``url``: of the whole cluster if it is a node
        of one (``INFO cluster``). No retries: a write whose answer was lost may have
        been applied, and trying it again would raise AccountExists for one's own
        account."""
        options = {"socket_timeout": SOCKET_TIMEOUT, "socket_connect_timeout": SOCKET_TIMEOUT}
        checked = {"health_check_interval": HEALTH_CHECK_INTERVAL}
        self._redis = redis.Redis.from_url(url, retry=Retry(NoBackoff(), 0), **options, **checked)
        if not _cluster_enabled(self._redis):
            return
        self._redis.close()
        # Still follows MOVED, ASK and TRYAGAIN (the server ran nothing); takes no
        # health_check_interval (see the module's docstring).
        self._redis = redis.RedisCluster.from_url(url, retry=Retry(NoBackoff(), 0), **options)

    def _check_version(self, client: Client) -> None:
        for server in _servers(client):
            try:
                found = str(server.info("server").get("redis_version", "0"))
            except rx.NoPermissionError:  # a user without INFO: the scripts will tell
                return
            version = tuple(int(part) for part in found.split(".")[:3] if part.isdigit())
            if version < MIN_REDIS:
                needed = ".".join(map(str, MIN_REDIS))
                raise StoreError(f"Redis at {_where(self.url)} is {found}; needs {needed} or newer")

    def _load_scripts(self, client: Client) -> None:
        """Every script on every server that may run it: one round trip each."""
        for server in _servers(client):
            pipe = server.pipeline(transaction=False)
            for script in _SCRIPTS.values():
                pipe.script_load(script.text)
            pipe.execute()

    @contextmanager
    def _client(self) -> Iterator[Client]:
        """The client for one call; failures underneath become StoreUnavailable."""
        client = self._redis
        if client is None:
            raise StoreUnavailable("the store is closed")
        try:
            yield client
        except (rx.RedisError, rx.RedisClusterException) as exc:
            cause = unavailable_cause(exc)
            if cause is None:
                raise
            raise StoreUnavailable(cause) from exc

    def _run(self, client: Client, name: str, keys: Sequence[str], args: Sequence):
        try:
            return self._script(name, keys, args).to(client)
        except rx.NoScriptError:  # Redis restarted, failed over or flushed its scripts
            self._load_scripts(client)
            return self._script(name, keys, args).to(client)

    @staticmethod
    def _script(name: str, keys: Sequence[str], args: Sequence) -> _Call:
        """EVALSHA of the script ``name``; on a cluster, all ``keys`` in one slot."""
        return _Call(keys[0], "evalsha", (_SCRIPTS[name].sha, len(keys), *keys, *args))

    def _registry(self, client: Client, name: str, *args) -> int:
        return int(self._run(client, name, [self.keys.accounts], [self.keys.registry, *args]))

    @staticmethod
    def _execute(pipe: Pipeline) -> list:
        """One round trip of what ``pipe`` queued. An error is raised here, not by
        redis-py, whose message would quote the command (a private line, say)."""
        results = pipe.execute(raise_on_error=False)
        for result in results:
            if isinstance(result, Exception):
                raise result
        return results

    def _together(self, client: Client, queue: Callable[[Pipeline], object]) -> list:
        """What ``queue`` puts in a pipeline, as one state (MULTI: keys of one slot). A
        cluster client that finds the slot moved learns where to from that: tried once
        more (a read: safe to repeat)."""
        try:
            return self._multi(client, queue)
        except (rx.AskError, rx.TryAgainError):
            return self._multi(client, queue)

    def _multi(self, client: Client, queue: Callable[[Pipeline], object]) -> list:
        pipe = client.pipeline(transaction=True)
        queue(pipe)
        return self._execute(pipe)

    def _each(self, client: Client, calls: Sequence[_Call]) -> list:
        """The results of ``calls``, in order: on one server one pipeline; on a cluster
        one per primary that holds some of their keys (not the cluster client's own
        pipeline, which sends a command again after a timeout: a write may have been
        applied, and a read after a timeout waits again, command by command)."""
        if not isinstance(client, redis.RedisCluster):
            pipe = client.pipeline(transaction=False)
            for call in calls:
                call.to(pipe)
            return self._execute(pipe) if calls else []
        results: list = [None] * len(calls)
        for node, indexes in _by_node(client, calls):
            found = self._on_node(client, node, [calls[i] for i in indexes])
            for index, result in zip(indexes, found, strict=True):
                results[index] = result
        return results

    def _on_node(self, client: redis.RedisCluster, node: ClusterNode, calls: list[_Call]) -> list:
        pipe = client.get_redis_connection(node).pipeline(transaction=False)
        for call in calls:
            call.to(pipe)
        try:
            found = pipe.execute(raise_on_error=False)
        except (rx.ConnectionError, rx.TimeoutError):
            _refresh_slots(client, node)
            raise
        pairs = zip(calls, found, strict=True)
        return [self._settle(client, call, result) for call, result in pairs]

    def _settle(self, client: redis.RedisCluster, call: _Call, result):
        """A command's result; one the node did not run (its slot moved, or the node
        lacked the script) sent again through the cluster client."""
        if not isinstance(result, Exception):
            return result
        if not isinstance(result, _NOT_RUN):
            raise result
        if isinstance(result, rx.NoScriptError):
            self._load_scripts(client)
        return call.to(client)

    # -- accounts --------------------------------------------------------------------

    def create_account(self, account: Account) -> None:
        settings = [x for name, value in account.settings.items() if value for x in (name, value)]
        args = [
            casefold(account.name),
            account.name,
            *_pairs(_account_fields(account)),
            len(account.certfps),
            *account.certfps,
            *settings,
        ]
        with self._client() as client:
            if not self._registry(client, "create_account", *args):
                raise AccountExists(account.name)

    def get_account(self, name: str) -> Account | None:
        with self._client() as client:
            return self._account(client, casefold(name))

    def _account(self, client: Client, key: str) -> Account | None:
        keys = self.keys

        def queue(pipe: Pipeline) -> None:  # MULTI: the four of one state ({r})
            pipe.hget(keys.accounts, key)
            pipe.hgetall(keys.account(key))
            pipe.lrange(keys.certfps(key), 0, -1)
            pipe.hgetall(keys.settings(key))

        name, fields, certfps, settings = self._together(client, queue)
        return None if name is None else _account(name, fields, certfps, settings)

    def account_names(self) -> list[str]:
        with self._client() as client:
            found = client.hgetall(self.keys.accounts)
        return [found[key].decode() for key in sorted(found)]

    def find_by_certfp(self, certfp: str) -> Account | None:
        with self._client() as client:
            key = client.hget(self.keys.certfp, certfp)
            return None if key is None else self._account(client, key.decode())

    def set_credentials(self, name: str, credentials: Credentials) -> bool:
        pairs = _pairs(_credential_fields(credentials))[1:]
        with self._client() as client:
            return bool(self._registry(client, "update_account", casefold(name), *pairs))

    def set_verified(self, name: str) -> bool:
        with self._client() as client:
            return bool(
                self._registry(
                    client, "update_account", casefold(name), "verified", 1, "verify_code", ""
                )
            )

    def add_certfp(self, name: str, certfp: str) -> bool:
        with self._client() as client:
            return bool(self._registry(client, "add_certfp", casefold(name), certfp))

    def remove_certfp(self, name: str, certfp: str) -> bool:
        with self._client() as client:
            return bool(self._registry(client, "remove_certfp", casefold(name), certfp))

    def set_setting(self, name: str, key: str, value: str) -> bool:
        with self._client() as client:
            return bool(self._registry(client, "set_setting", casefold(name), key, value))

    def account_metadata(self, name: str) -> dict[str, str]:
        with self._client() as client:
            found = client.hgetall(self.keys.metadata(casefold(name)))
        return {key.decode(): value.decode() for key, value in found.items()}

    def set_account_metadata(self, name: str, changes: Sequence[tuple[str, str | None]]) -> bool:
        args = [
            x for key, value in changes for x in ("d" if value is None else "s", key, value or "")
        ]
        with self._client() as client:
            return bool(self._registry(client, "set_metadata", casefold(name), *args))

    def drop_account(self, name: str) -> bool:
        key = casefold(name)
        with self._client() as client:
            if not self._registry(client, "drop_account", key):
                return False
            client.delete(self.keys.markers(key))  # another slot: a call of its own
            return True

    # -- channels --------------------------------------------------------------------

    def register_channel(self, channel: RegisteredChannel) -> None:
        fields = {"name": channel.name} | _channel_fields(channel)
        with self._client() as client:
            args = _channel_args(channel, fields)
            if not self._registry(client, "register_channel", *args):
                raise ChannelExists(channel.name)

    def get_channel(self, name: str) -> RegisteredChannel | None:
        with self._client() as client:
            found = self._channels(client, [casefold(name)])
        return found[0] if found else None

    def channels(self) -> list[RegisteredChannel]:
        with self._client() as client:
            keys = [key.decode() for key in client.zrange(self.keys.channels, 0, -1)]
            return self._channels(client, keys) if keys else []

    def _channels(self, client: Client, keys: list[str]) -> list[RegisteredChannel]:
        """The records of these channel keys, in order; those not registered left out."""

        def queue(pipe: Pipeline) -> None:  # MULTI: no record half-updated ({r})
            for key in keys:
                pipe.hgetall(self.keys.channel(key))
                pipe.hvals(self.keys.access(key))

        found = self._together(client, queue)
        pairs = zip(found[0::2], found[1::2], strict=True)
        return [_channel(fields, access) for fields, access in pairs if fields]

    def update_channel(self, channel: RegisteredChannel) -> bool:
        with self._client() as client:
            args = _channel_args(channel, _channel_fields(channel))
            return bool(self._registry(client, "update_channel", *args))

    def drop_channel(self, name: str) -> bool:
        with self._client() as client:
            return bool(self._registry(client, "drop_channel", casefold(name)))

    # -- history -----------------------------------------------------------------------

    def append_history(self, items: Sequence[HistoryItem]) -> None:
        with self._client() as client:
            if not items:
                return
            groups = _by_target(items)
            parties = _by_party(groups)
            if isinstance(client, redis.RedisCluster):
                self._append_by_slot(client, groups, parties)
            else:  # one script for the whole batch
                self._run(client, "append", *self._append_call(groups, parties, groups))

    def _append_by_slot(
        self, client: redis.RedisCluster, groups: _Groups, parties: _Parties
    ) -> None:
        """A batch on a cluster: a script per slot, each with its conversations' lines
        and parties' sets; the one of ``conversations`` (and whatever shares its slot)
        last, after every line it scores (see _rescore). The others go a pipeline per
        primary. A failure part-way leaves some parts stored: the batch sent again
        stores nothing twice (msgids)."""
        slot = client.keyslot
        parts: dict[int, tuple[_Groups, _Parties]] = {}
        for target, lines in groups.items():
            parts.setdefault(slot(self.keys.times(target)), ({}, {}))[0][target] = lines
        for party, targets in parties.items():
            parts.setdefault(slot(self.keys.dms(party)), ({}, {}))[1][party] = targets
        last = parts.pop(slot(self.keys.conversations), ({}, {}))
        calls = [self._script("append", *self._append_call(*part, {})) for part in parts.values()]
        self._each(client, calls)
        self._run(client, "append", *self._append_call(*last, groups))

    def _append_call(
        self, groups: _Groups, parties: _Parties, scored: _Groups
    ) -> tuple[list[str], list]:
        """KEYS and ARGV of the append script (see _APPEND): the lines of ``groups``,
        the sets of ``parties``, and the scores in ``conversations`` of ``scored`` (on
        one server the batch's all three, on a cluster a slot's part)."""
        keys: list[str] = []
        args: list = [len(groups), len(parties), int(bool(scored))]
        for target, lines in groups.items():
            keys += self.keys.conversation(target)
            args.append(len(lines))
            args += [x for line in lines for x in _line_args(line)]
        for party, targets in parties.items():
            keys.append(self.keys.dms(party))
            args += [len(targets), *targets]
        if scored:
            keys.append(self.keys.conversations)
        for target, lines in scored.items():
            args += [min(line.time for line in lines), target]
        return keys, args

    def history(
        self,
        target: str,
        after: HistoryBound | None,
        before: HistoryBound | None,
        limit: int,
        latest: bool,
        not_before: float = 0.0,
        messages_only: bool = False,
    ) -> list[HistoryItem]:
        since = ["t", not_before] if not_before else ["", ""]
        args = [limit, int(latest), int(messages_only), *_bound_args(after),
                *_bound_args(before), *since]  # fmt: skip
        with self._client() as client:
            found = self._run(client, "history", self.keys.conversation(target), args)
        return _lines(target, found)

    def history_item(self, target: str, msgid: str) -> HistoryItem | None:
        with self._client() as client:
            found = self._run(client, "history_item", self.keys.conversation(target), [msgid])
        return _lines(target, [found])[0] if found else None

    def delete_history(self, target: str, msgid: str) -> bool:
        with self._client() as client:
            keys = self.keys.conversation(target)
            return bool(self._run(client, "delete_history", keys, [msgid]))

    def read_markers(self, account: str) -> dict[str, float]:
        with self._client() as client:
            found = client.hgetall(self.keys.markers(casefold(account)))
        return {target.decode(): float(when) for target, when in found.items()}

    def set_read_marker(self, account: str, target: str, when: float) -> float:
        keys = [self.keys.markers(casefold(account))]
        with self._client() as client:
            return float(self._run(client, "set_read_marker", keys, [target, when]))

    def history_targets(
        self, targets: Sequence[str], since: float, until: float, limit: int
    ) -> list[tuple[str, float]]:
        wanted = list(dict.fromkeys(targets))
        times = [self.keys.times(target) for target in wanted]
        calls = [_Call(key, "zrevrangebyscore", (key, until, since, 0, 1, True)) for key in times]
        with self._client() as client:
            found = self._each(client, calls)  # each one's latest time in the window
        pairs = [(target, got[0][1]) for target, got in zip(wanted, found, strict=True) if got]
        pairs.sort(key=lambda pair: (pair[1], pair[0]))
        return pairs[:limit]

    def conversations_of(self, party: str) -> list[str]:
        with self._client() as client:
            found = client.smembers(self.keys.dms(party))
        return sorted(target.decode() for target in found)

    def expire_history(self, older_than: float, keep_per_target: int, batch: int) -> int:
        with self._client() as client:
            gone = self._expire_old(client, older_than, batch)
            if keep_per_target and gone < batch:
                gone += self._trim(client, keep_per_target, batch - gone)
        return gone

    def _expire_old(self, client: Client, older_than: float, batch: int) -> int:
        """Up to ``batch`` lines older than ``older_than``, the conversation with the
        oldest first (``conversations`` scores each by a time no later than its oldest)."""
        gone, done = 0, set()
        while gone < batch:
            first = client.zrange(self.keys.conversations, 0, 0, withscores=True)
            if not first or first[0][1] >= older_than or first[0][0] in done:
                break
            target = first[0][0].decode()
            done.add(first[0][0])
            keys = self.keys.conversation(target)
            gone += int(self._run(client, "expire_old", keys, [older_than, batch - gone]))
            self._rescore(client, target)
        return gone

    def _rescore(self, client: Client, target: str) -> None:
        """Score ``target`` by its oldest line now, or take it out if it has none.

        Taken out first, then its oldest line read, then put back with ZADD LT: an
        append (its lines, then its ZADD LT: one script on one server; on a cluster the
        part for ``conversations`` goes after the lines', see _append_by_slot) that the
        read missed comes after the read, so its ZADD LT after the removal too, and the
        score never ends up later than a line it has. Separate calls: on a cluster, two
        slots."""
        client.zrem(self.keys.conversations, target)
        oldest = client.zrange(self.keys.times(target), 0, 0, withscores=True)
        if oldest:
            client.zadd(self.keys.conversations, {target: oldest[0][1]}, lt=True)

    def _trim(self, client: Client, keep: int, batch: int) -> int:
        """Up to ``batch`` lines beyond the newest ``keep`` of each conversation: every
        conversation is counted (``ZCARD``, PAGE a round trip), those over trimmed."""
        gone, start = 0, 0
        while gone < batch:
            page = client.zrange(self.keys.conversations, start, start + PAGE - 1)
            if not page:
                break
            targets = [target.decode() for target in page]
            times = [self.keys.times(target) for target in targets]
            counts = self._each(client, [_Call(key, "zcard", (key,)) for key in times])
            for target, count in zip(targets, counts, strict=True):
                if count > keep and gone < batch:
                    keys = self.keys.conversation(target)
                    gone += int(self._run(client, "trim", keys, [keep, batch - gone]))
            start += PAGE
        return gone

    # -- life ------------------------------------------------------------------------

    def close(self) -> None:
        """Close the connection pool; calls after this raise StoreUnavailable. Every
        write is in Redis when its call returns: nothing is pending. Twice is fine."""
        client, self._redis = self._redis, None
        if client is not None:
            client.close()
