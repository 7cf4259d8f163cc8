package oauth2http

import "net/url"

// urlUnescape decodes a Basic credential part: RFC 6749 §2.3.1 has clients
// form-urlencode the id and secret before Basic encoding.
func urlUnescape(s string) (string, error) {
	decoded, err := url.QueryUnescape(s)
	if err != nil {
		return s, err
	}
	return decoded, nil
}
