package lanewayconfig

import (
	"net/url"
	"strings"
)

// redacted replaces secrets in printed configuration.
const redacted = "xxxxx"

// RedactURL replaces the password of a URL ("redis://:secret@host",
// "postgres://u:secret@h/db") and the value of any "password" query
// parameter with "xxxxx". Everything else is kept byte for byte. A string
// that does not parse as a URL is redacted on a best-effort basis.
func RedactURL(s string) string {
	u, err := url.Parse(s)
	if err != nil || u.Opaque != "" {
		return redactLoose(s)
	}
	out := s
	if u.User != nil {
		if _, ok := u.User.Password(); ok {
			// Rebuild only the authority's user info, keeping the rest
			// verbatim (url.URL.String would re-encode it).
			prefix := u.Scheme + "://"
			if strings.HasPrefix(out, prefix) {
				rest := out[len(prefix):]
				if at := strings.LastIndex(authority(rest), "@"); at >= 0 {
					user := u.User.Username()
					out = prefix + url.User(user).String() + ":" + redacted + rest[at:]
				}
			}
		}
	}
	return redactQuery(out)
}

// authority returns the part of a URL after "scheme://" up to the path,
// query or fragment.
func authority(rest string) string {
	if i := strings.IndexAny(rest, "/?#"); i >= 0 {
		return rest[:i]
	}
	return rest
}

// redactQuery replaces the values of "password" (any case) query parameters.
func redactQuery(s string) string {
	base, query, ok := strings.Cut(s, "?")
	if !ok {
		return s
	}
	query, frag, hasFrag := strings.Cut(query, "#")
	parts := strings.Split(query, "&")
	for i, p := range parts {
		k, _, hasValue := strings.Cut(p, "=")
		if key, err := url.QueryUnescape(k); err == nil && hasValue && isPasswordKey(key) {
			parts[i] = k + "=" + redacted
		}
	}
	out := base + "?" + strings.Join(parts, "&")
	if hasFrag {
		out += "#" + frag
	}
	return out
}

func isPasswordKey(k string) bool {
	return strings.EqualFold(k, "password") || strings.EqualFold(k, "sslpassword") || strings.EqualFold(k, "sentinel_password")
}

// redactLoose handles strings url.Parse rejects: it hides what sits between
// the last ':' and the '@' of the authority, and password query values.
func redactLoose(s string) string {
	if i := strings.Index(s, "://"); i >= 0 {
		auth := authority(s[i+3:])
		if at := strings.LastIndex(auth, "@"); at >= 0 {
			if colon := strings.Index(auth[:at], ":"); colon >= 0 {
				s = s[:i+3] + auth[:colon+1] + redacted + s[i+3+at:]
			}
		}
	}
	return redactQuery(s)
}
