package redisbroker

import (
	"net/url"
	"sort"
	"strings"
)

// redactedError replaces the text of an error that may quote a Redis URL
// with one whose password is masked, keeping the original for errors.Is/As.
type redactedError struct {
	msg string
	err error
}

func (e *redactedError) Error() string { return e.msg }
func (e *redactedError) Unwrap() error { return e.err }

// redactErr masks the password of rawURL wherever it appears in err's text
// (url.Parse errors, for one, quote the whole URL), in its raw, decoded and
// escaped forms.
func redactErr(err error, rawURL string) error {
	forms := urlPasswordForms(rawURL)
	if err == nil || len(forms) == 0 {
		return err
	}
	msg := err.Error()
	redacted := msg
	for _, f := range forms {
		redacted = strings.ReplaceAll(redacted, f, "xxxxx")
	}
	if redacted == msg {
		return err
	}
	return &redactedError{msg: redacted, err: err}
}

// urlPasswordForms extracts the password of a URL by hand, so that it also
// works on URLs url.Parse rejects, longest form first.
func urlPasswordForms(raw string) []string {
	forms := userPasswordForms(raw)
	// A Sentinel URL may carry the Sentinels' own password as a query
	// parameter.
	if _, q, ok := strings.Cut(raw, "?"); ok {
		if vals, err := url.ParseQuery(q); err == nil {
			if pw := vals.Get("sentinel_password"); pw != "" {
				forms = append(forms, pw, url.QueryEscape(pw))
			}
		}
	}
	sort.Slice(forms, func(i, j int) bool { return len(forms[i]) > len(forms[j]) })
	return forms
}

func userPasswordForms(raw string) []string {
	_, rest, ok := strings.Cut(raw, "://")
	if !ok {
		return nil
	}
	if i := strings.IndexAny(rest, "/?#"); i >= 0 {
		rest = rest[:i]
	}
	at := strings.LastIndex(rest, "@")
	if at < 0 {
		return nil
	}
	_, pw, ok := strings.Cut(rest[:at], ":")
	if !ok || pw == "" {
		return nil
	}
	forms := []string{pw}
	if dec, err := url.PathUnescape(pw); err == nil && dec != "" {
		forms = append(forms, dec, url.QueryEscape(dec), url.PathEscape(dec))
	}
	sort.Slice(forms, func(i, j int) bool { return len(forms[i]) > len(forms[j]) })
	return forms
}
