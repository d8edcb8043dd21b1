// Package redisstore implements store.Store on Redis (standalone, or Redis
// Cluster through New with a cluster client), using
// github.com/redis/go-redis/v9.
//
// # Key layout
//
// Every key starts with a configurable prefix (default "agenthub") and
// carries a Redis Cluster hash tag, the part in braces, so that all keys one
// operation touches hash to the same slot:
//
//	<prefix>:{s:<scope>}:r:<kind>:<id>   a record (a Redis string with the record's TTL)
//	<prefix>:{s:<scope>}:i:<kind>        the index of one scope and kind (a sorted set)
//	<prefix>:{g:<kind>}:r:<kind>:<id>    a record of the global scope ""
//	<prefix>:{g:<kind>}:i:<kind>         the index of a global kind
//	<prefix>:{l:<name>}                  a log (a Redis list, entry Seq n at index n-1)
//
// All kinds of one principal share the tag {s:<scope>}, so a later operation
// over several of a principal's records stays within one slot. Global
// records get a tag per kind instead, so that busy global kinds (locks)
// spread over the cluster rather than piling onto one node. A kind busy
// enough that one slot is too few spreads its records over several scopes
// of its own: the Slack app keeps its dedupe keys in 256.
//
// Scope and log names are escaped before they go into a tag: '%', '{', '}'
// and ':' become %25, %7B, %7D and %3A. Without that a scope such as "a}b"
// would end the tag early and share a slot (and a tag) with the scope "a",
// and the escaping keeps distinct scopes distinct. The prefix has '%', '{'
// and '}' escaped the same way, so it can never supply a tag of its own.
// Kinds cannot hold braces or colons (store.Key.Validate), and the ID comes
// after the tag, where braces no longer matter.
//
// # Index and expiry
//
// Redis expires a record by itself (SET … PX). Its index entry, member = ID,
// has as score the record's expiry in Unix milliseconds, or +inf for a
// record without one. List reads the index from "now" upwards with
// ZRANGEBYSCORE, so expired members are skipped, and removes them
// (ZREMRANGEBYSCORE). Put and Create prune expired members of the index
// they touch too, so an index of short-lived records (dedupe keys, leases)
// does not grow without bound even when nobody lists it.
//
// "Now" is the Redis server's clock (TIME inside the scripts), never the
// client's: it is the clock Redis expires keys by, so a client whose clock
// runs ahead cannot prune a live record from the index, and replicas with
// skewed clocks agree. Item.ExpiresAt is reported as the client's clock plus
// the remaining PTTL, so it reads correctly on the caller's clock.
//
// # Scripts and round trips
//
// Each operation that changes state depending on what is there is one Lua
// script (EVALSHA, falling back to EVAL once when the server does not have
// it cached yet, as go-redis's Script.Run does), so the record and its
// index entry change together and each operation costs one round trip.
// Operations whose commands need only to run together (reads, and Delete)
// are a MULTI/EXEC transaction instead, in one round trip too: a script
// costs Redis 7 about 16 µs to run where GET costs 0.3 µs, and a busy bot
// does a dozen such operations per message.
//
//   - Put and Create: SET (with NX for Create) and ZADD.
//   - CompareAndSwap and CompareAndDelete: GET, compare, then SET or DEL and
//     ZADD or ZREM. With store.KeepTTL, SET … KEEPTTL keeps the PTTL and the
//     index entry keeps its score.
//   - Delete: MULTI, DEL, ZREM, EXEC.
//   - Get: MULTI, GET, PTTL, EXEC; GetMany: the same with GET and PTTL of
//     each key (one scope, so one slot).
//   - List: two round trips, one script that prunes and reads the index and
//     one that reads the records (GET and PTTL each) with their keys passed
//     as KEYS. Redis requires a script to declare every key it touches, and
//     the record keys are only known after the index is read.
//   - Append: LLEN, and if it equals the expected head, RPUSH of the whole
//     batch; otherwise store.ErrConflict naming the current head.
//   - Head: MULTI, LLEN, LINDEX -1, EXEC. Read is a plain LRANGE.
//
// The scripts need Redis 6 or later (SET KEEPTTL, TIME in a writing script).
package redisstore
