package netfail

import (
	"context"
	"errors"
	"fmt"
	"net"
	"syscall"
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestUnreachable(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want bool
	}{
		{nil, false},
		{fmt.Errorf("publish: %w", syscall.ECONNREFUSED), true},
		{&net.OpError{Op: "dial", Net: "tcp", Err: errors.New("refused")}, true},
		{fmt.Errorf("x: %w", context.DeadlineExceeded), true},
		{errors.New("redisbroker: publish: LOADING Redis is loading the dataset in memory"), true},
		{errors.New("READONLY You can't write against a read only replica."), true}, //nolint:revive // the server's own words
		{errors.New("redis: client is closed"), true},
		{errors.New("WRONGTYPE Operation against a key holding the wrong kind of value"), false},
		{errors.New("ERR max number of clients reached for LOADING-ish names"), false},
		{errors.New("constraint violated"), false},
	} {
		assert.Equal(t, tc.want, Unreachable(tc.err), "%v", tc.err)
	}
}
