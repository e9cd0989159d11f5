package dashboard

import (
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"mime"
	"net/http"
	"net/url"
	"strings"
)

// TokenHeader carries the write token. A header, not a cookie: a browser
// never adds it to a request on its own, so another site cannot make a
// visitor's browser send it.
const TokenHeader = "X-Laneway-Token"

// errRefused is a write refused before it touched anything.
type errRefused struct {
	status int
	msg    string
}

func (e errRefused) Error() string { return e.msg }

// checkWrite decides whether a write request may run. In order: writes
// enabled at all; the request comes from this dashboard's own pages (the
// browser's Sec-Fetch-Site and Origin headers, when sent, must say
// same-origin); the body is JSON (a cross-site HTML form cannot send that
// content type without a CORS preflight, which this server never grants);
// and it carries the token.
func (d *Dashboard) checkWrite(r *http.Request) error {
	if r.Method != http.MethodPost {
		return errRefused{http.StatusMethodNotAllowed, "writes are POST requests"}
	}
	if !d.p.Write {
		return errRefused{http.StatusForbidden, "writes are disabled: this dashboard is read-only (start it with --write and LANEWAY_UI_TOKEN set; see docs/dashboard.md)"}
	}
	if s := r.Header.Get("Sec-Fetch-Site"); s != "" && s != "same-origin" {
		return errRefused{http.StatusForbidden, fmt.Sprintf("cross-site request refused (Sec-Fetch-Site: %s)", s)}
	}
	if o := r.Header.Get("Origin"); o != "" && !sameOrigin(o, r) {
		return errRefused{http.StatusForbidden, fmt.Sprintf("cross-origin request refused (Origin %s is not this dashboard)", o)}
	}
	if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != "application/json" {
		return errRefused{http.StatusUnsupportedMediaType, "a write needs Content-Type: application/json"}
	}
	got := r.Header.Get(TokenHeader)
	if got == "" {
		if a, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer "); ok {
			got = a
		}
	}
	if got == "" {
		return errRefused{http.StatusUnauthorized, "missing write token: enter it in the page's token field (header " + TokenHeader + ")"}
	}
	if subtle.ConstantTimeCompare([]byte(got), []byte(d.p.Token)) != 1 {
		return errRefused{http.StatusUnauthorized, "wrong write token"}
	}
	return nil
}

// sameOrigin reports whether origin names the host the request was sent to.
func sameOrigin(origin string, r *http.Request) bool {
	u, err := url.Parse(origin)
	if err != nil {
		return false
	}
	return strings.EqualFold(u.Host, r.Host) && (u.Scheme == "http" || u.Scheme == "https")
}

// write runs one guarded write: it checks the request, decodes its JSON
// body into a fresh B, calls do, answers its result as JSON, and logs what
// was touched (or why it was refused).
func write[B any](d *Dashboard, action string, do func(r *http.Request, body B) (any, []any, error)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		remote := []any{"action", action, "remote", r.RemoteAddr}
		if err := d.checkWrite(r); err != nil {
			var ref errRefused
			errors.As(err, &ref)
			d.log.Warn("dashboard write refused", append(remote, "reason", ref.msg)...)
			writeError(w, ref.status, ref.msg)
			return
		}
		var body B
		dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<16))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&body); err != nil {
			writeError(w, http.StatusBadRequest, "request body: "+err.Error())
			return
		}
		res, touched, err := do(r, body)
		if err != nil {
			d.log.Warn("dashboard write failed", append(append(remote, touched...), "err", err)...)
			writeError(w, statusOf(err), err.Error())
			return
		}
		d.log.Info("dashboard write", append(remote, touched...)...)
		writeJSON(w, res)
	}
}
