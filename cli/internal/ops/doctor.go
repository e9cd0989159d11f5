package ops

import (
	"context"

	"github.com/laneway/laneway/cli/internal/inspect"
)

// Doctor is the result of the doctor checks (`laneway doctor --json`).
type Doctor struct {
	Domain string          `json:"domain"`
	Env    string          `json:"env"`
	OK     bool            `json:"ok"` // no check failed
	Checks []inspect.Check `json:"checks"`
	Pass   int             `json:"pass"`
	Warn   int             `json:"warn"`
	Fail   int             `json:"fail"`
}

// RunDoctor runs the checks (in may be nil when p.BrokerErr says why) and
// counts their outcomes.
func RunDoctor(ctx context.Context, in *inspect.Inspector, domain string, p inspect.DoctorParams) (Doctor, error) {
	checks, err := inspect.Doctor(ctx, in, p)
	if err != nil {
		return Doctor{}, err
	}
	rep := Doctor{Domain: domain, Env: p.Config.EnvName(), Checks: checks}
	for _, c := range checks {
		switch c.Status {
		case inspect.Pass:
			rep.Pass++
		case inspect.Warn:
			rep.Warn++
		case inspect.Fail:
			rep.Fail++
		}
	}
	rep.OK = rep.Fail == 0
	return rep, nil
}
