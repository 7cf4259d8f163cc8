package tokens

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"strings"
)

// errDuplicateClaim marks a payload that names one claim twice. JSON parsers
// disagree on which copy wins, so a verifier and a downstream service could
// read different subjects from one signed token: refuse it outright.
var errDuplicateClaim = errors.New("token payload repeats a claim")

// checkPayloadShape refuses payloads that are not one JSON object with
// distinct member names.
func checkPayloadShape(token string) error {
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return errors.New("token is not three dot-separated parts")
	}
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return errors.New("token payload is not base64url")
	}
	decoder := json.NewDecoder(bytes.NewReader(payload))
	decoder.UseNumber()
	start, err := decoder.Token()
	if err != nil || start != json.Delim('{') {
		return errors.New("token payload is not a JSON object")
	}
	seen := map[string]bool{}
	for decoder.More() {
		key, err := decoder.Token()
		if err != nil {
			return err
		}
		name, _ := key.(string)
		if seen[name] {
			return errDuplicateClaim
		}
		seen[name] = true
		var skip json.RawMessage
		if err := decoder.Decode(&skip); err != nil {
			return err
		}
	}
	return nil
}
