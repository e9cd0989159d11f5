package lanes

import (
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestRoute(t *testing.T) {
	on := Config{Enabled: true, Threshold: 0, Naming: Naming{BackfillSuffix: "backfill"}}
	tests := []struct {
		name     string
		category string
		priority Priority
		lanes    Config
		want     string
	}{
		{"lanes off, low", "customer", -100, Config{}, "customer"},
		{"lanes off, high", "customer", 100, Config{Threshold: 0}, "customer"},
		{"lanes off, below a threshold", "customer", -50, Config{Threshold: 10, Naming: Naming{BackfillSuffix: "backfill"}}, "customer"},
		{"equal to threshold stays primary", "customer", 0, on, "customer"},
		{"threshold-1 goes to backfill", "customer", -1, on, "customer:backfill"},
		{"above threshold", "customer", 50, on, "customer"},
		{"custom threshold, below", "customer", -26, Config{Enabled: true, Threshold: -25, Naming: Naming{BackfillSuffix: "migration"}}, "customer:migration"},
		{"custom threshold, equal", "customer", -25, Config{Enabled: true, Threshold: -25, Naming: Naming{BackfillSuffix: "migration"}}, "customer"},
		{"custom threshold, normal", "customer", 0, Config{Enabled: true, Threshold: -25, Naming: Naming{BackfillSuffix: "migration"}}, "customer"},
		{"commands", "customer:command", -50, on, "customer:command:backfill"},
		{"commands primary", "customer:command", 0, on, "customer:command"},
		{"empty suffix means backfill", "customer", -1, Config{Enabled: true}, "customer:backfill"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assert.Equal(t, tt.want, tt.lanes.Route(tt.category, tt.priority))
		})
	}
}

func TestNextID(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"5-0":                        "5-1",
		"5-41":                       "5-42",
		"5":                          "5-1",
		"7-18446744073709551615":     "8-0",
		"1795648799954-3":            "1795648799954-4",
		"not-an-id":                  "not-an-id",
		"12-18446744073709551616000": "12-18446744073709551616000",
	} {
		assert.Equal(t, want, NextID(in), in)
	}
}
