package redisstore_test

import (
	"context"
	"fmt"
	"net"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/redis/go-redis/v9"
)

// commandLog is a go-redis hook that counts round trips (one per processed
// command, one per pipeline) and, when record is set, keeps the keys of
// every command sent.
type commandLog struct {
	trips  atomic.Int64
	record bool

	mu   sync.Mutex
	sent []sentCommand
}

type sentCommand struct {
	name string
	keys []string
}

var _ redis.Hook = (*commandLog)(nil)

func (l *commandLog) DialHook(next redis.DialHook) redis.DialHook {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		return next(ctx, network, addr)
	}
}

func (l *commandLog) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		l.trips.Add(1)
		l.keep(cmd)
		return next(ctx, cmd)
	}
}

func (l *commandLog) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		l.trips.Add(1)
		for _, c := range cmds {
			l.keep(c)
		}
		return next(ctx, cmds)
	}
}

func (l *commandLog) keep(cmd redis.Cmder) {
	if !l.record {
		return
	}
	sc := sentCommand{name: strings.ToLower(cmd.Name()), keys: commandKeys(cmd)}
	l.mu.Lock()
	l.sent = append(l.sent, sc)
	l.mu.Unlock()
}

// take returns the commands sent since the last call and forgets them.
func (l *commandLog) take() []sentCommand {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := l.sent
	l.sent = nil
	return out
}

// commandKeys returns the key arguments of the commands the store sends:
// scripts declare theirs after numkeys; the rest take one key first. A
// command it does not know is reported as a key named after it, so a test
// notices rather than missing keys.
func commandKeys(cmd redis.Cmder) []string {
	args := cmd.Args()
	switch strings.ToLower(cmd.Name()) {
	case "eval", "evalsha", "eval_ro", "evalsha_ro":
		n, _ := args[2].(int)
		var keys []string
		for _, a := range args[3 : 3+n] {
			keys = append(keys, fmt.Sprint(a))
		}
		return keys
	case "ping", "hello", "client", "select", "auth", "multi", "exec":
		return nil
	case "get", "lrange", "llen", "lindex", "zrangebyscore", "zcard", "pttl", "del", "unlink", "set", "zrem":
		return []string{fmt.Sprint(args[1])}
	}
	return []string{"unknown command " + cmd.Name()}
}

// crc16 is CRC-16/XMODEM (polynomial 0x1021, initial value 0), the checksum
// the Redis Cluster specification assigns keys to slots with.
func crc16(b []byte) uint16 {
	var crc uint16
	for _, c := range b {
		crc ^= uint16(c) << 8
		for range 8 {
			if crc&0x8000 != 0 {
				crc = crc<<1 ^ 0x1021
			} else {
				crc <<= 1
			}
		}
	}
	return crc
}

// hashTag returns the part of key that Redis Cluster hashes: the text
// between the first '{' and the first '}' after it, if that is non-empty,
// else the whole key.
func hashTag(key string) string {
	open := strings.IndexByte(key, '{')
	if open < 0 {
		return key
	}
	end := strings.IndexByte(key[open+1:], '}')
	if end <= 0 {
		return key
	}
	return key[open+1 : open+1+end]
}

// keySlot is CLUSTER KEYSLOT.
func keySlot(key string) int {
	return int(crc16([]byte(hashTag(key))) % 16384)
}
