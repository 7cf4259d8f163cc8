package dpop

import (
	"errors"
	"net"
	"net/url"
	"strings"
)

// normalizeURL is the form in which htu and the request's URL are compared
// (RFC 9449 §4.3 check 9, RFC 3986 §6.2.2 and §6.2.3): scheme and host in
// lower case, the scheme's default port removed, an empty path as "/",
// percent encodings in upper case and decoded where they encode an
// unreserved character, dot segments removed; query and fragment dropped.
// A URL with user information is refused: no request URL has one.
func normalizeURL(raw string) (string, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return "", err
	}
	scheme := strings.ToLower(u.Scheme)
	if scheme != "https" && scheme != "http" || u.Host == "" || u.User != nil || u.Opaque != "" {
		return "", errors.New("not an absolute http(s) URL")
	}
	host := strings.ToLower(u.Host)
	if name, port, err := net.SplitHostPort(host); err == nil {
		if port == "" || scheme == "https" && port == "443" || scheme == "http" && port == "80" {
			host = name
			if strings.Contains(name, ":") {
				host = "[" + name + "]"
			}
		}
	}
	return scheme + "://" + host + removeDotSegments(normalizePercent(u.EscapedPath())), nil
}

// normalizePercent writes percent encodings in upper case, and decodes the
// ones of unreserved characters (RFC 3986 §6.2.2.1, §6.2.2.2).
func normalizePercent(path string) string {
	var out strings.Builder
	for i := 0; i < len(path); i++ {
		if path[i] == '%' && i+2 < len(path) && isHex(path[i+1]) && isHex(path[i+2]) {
			b := unhex(path[i+1])<<4 | unhex(path[i+2])
			if isUnreserved(b) {
				out.WriteByte(b)
			} else {
				out.WriteByte('%')
				out.WriteString(strings.ToUpper(path[i+1 : i+3]))
			}
			i += 2
			continue
		}
		out.WriteByte(path[i])
	}
	return out.String()
}

// removeDotSegments is RFC 3986 §5.2.4 for an absolute path; an empty path
// is "/" (§6.2.3).
func removeDotSegments(path string) string {
	if path == "" {
		return "/"
	}
	var kept []string
	segments := strings.Split(path, "/")[1:] // the path starts with "/"
	for i, segment := range segments {
		last := i == len(segments)-1
		switch segment {
		case ".":
			if last {
				kept = append(kept, "")
			}
		case "..":
			if len(kept) > 0 {
				kept = kept[:len(kept)-1]
			}
			if last {
				kept = append(kept, "")
			}
		default:
			kept = append(kept, segment)
		}
	}
	return "/" + strings.Join(kept, "/")
}

func isHex(c byte) bool { return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F' }

func unhex(c byte) byte {
	switch {
	case c <= '9':
		return c - '0'
	case c <= 'F':
		return c - 'A' + 10
	}
	return c - 'a' + 10
}

func isUnreserved(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '.' || c == '_' || c == '~'
}
