package redisbroker

import (
	"errors"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"

	"github.com/laneway/laneway/lanewaybroker"
)

func TestToEntriesOfDeletedEntry(t *testing.T) {
	t.Parallel()
	// XREADGROUP on a pending id and XCLAIM on Redis 6 answer a deleted
	// entry with nil fields: it must come back with empty Data so the caller
	// can dead-letter it, not be dropped or crash.
	got := toEntries([]redis.XMessage{
		{ID: "1-0", Values: nil},
		{ID: "2-0", Values: map[string]any{"data": "x", "other": "y"}},
		{ID: "3-0", Values: map[string]any{"junk": "z"}},
	})
	want := []lanewaybroker.Entry{
		{ID: "1-0", Data: "", Fields: map[string]string{}},
		{ID: "2-0", Data: "x", Fields: map[string]string{"data": "x", "other": "y"}},
		{ID: "3-0", Data: "", Fields: map[string]string{"junk": "z"}},
	}
	assert.Equal(t, want, got)
	assert.Nil(t, toEntries(nil))
}

func TestCeilMs(t *testing.T) {
	t.Parallel()
	for in, want := range map[time.Duration]time.Duration{
		-time.Second:                    0,
		0:                               0,
		time.Microsecond:                time.Millisecond,
		time.Millisecond:                time.Millisecond,
		1500 * time.Microsecond:         2 * time.Millisecond,
		time.Hour + time.Nanosecond:     time.Hour + time.Millisecond,
		50*time.Millisecond + 1:         51 * time.Millisecond,
		3*time.Second - time.Nanosecond: 3 * time.Second,
	} {
		assert.Equal(t, want, ceilMs(in), in.String())
	}
}

func TestRedactErr(t *testing.T) {
	t.Parallel()
	base := errors.New(`parse "redis://u:p%40ss@h:x": bad, p@ss, p%40ss`)
	got := redactErr(base, "redis://u:p%40ss@h:x")
	assert.NotContains(t, got.Error(), "p@ss")
	assert.NotContains(t, got.Error(), "p%40ss")
	assert.ErrorIs(t, got, base, "the original error is kept for errors.Is")

	plain := errors.New("no password here")
	assert.Same(t, plain, redactErr(plain, "redis://h:6379"))
	assert.Same(t, plain, redactErr(plain, "redis://u:pw@h:6379"))
	assert.Nil(t, redactErr(nil, "redis://u:pw@h"))
}

func TestVersionParsing(t *testing.T) {
	t.Parallel()
	info := "# Server\r\nredis_version:7.0.15\r\nredis_git_sha1:00000000\r\n"
	assert.Equal(t, "7.0.15", infoField(info, "redis_version"))
	assert.Equal(t, "", infoField(info, "missing"))
	for v, want := range map[string]int{"7.0.15": 7, "6.2.14": 6, "255.0.0": 255} {
		got, ok := majorVersion(v)
		assert.True(t, ok, v)
		assert.Equal(t, want, got, v)
	}
	_, ok := majorVersion("")
	assert.False(t, ok)
}

func TestOptionsDefaults(t *testing.T) {
	t.Parallel()
	o := Options{}.withDefaults()
	assert.Equal(t, Options{
		PoolSize:       PoolSizeDefault,
		ReadTimeout:    ReadTimeoutDefault,
		WriteTimeout:   ReadTimeoutDefault,
		ConnectTimeout: ConnectTimeoutDefault,
	}, o)
	o = Options{ReadTimeout: time.Second, PoolSize: 3}.withDefaults()
	assert.Equal(t, time.Second, o.WriteTimeout, "WriteTimeout follows ReadTimeout")
	assert.Equal(t, 3, o.PoolSize)
}
