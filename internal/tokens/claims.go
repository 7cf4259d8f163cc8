package tokens

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"strings"
)

// errDuplicateClaim marks a payload that names one claim twice. JSON parsers
// disagree on which copy wins, so a verifier and a downstream service could
// read different subjects from one signed token: refuse it outright.
var errDuplicateClaim = errors.New("token payload repeats a claim")

// decodeCanonical decodes unpadded base64url, refusing every other spelling
// of the same bytes (line breaks, spare trailing bits): one encoding each.
func decodeCanonical(text string) ([]byte, bool) {
	raw, err := base64.RawURLEncoding.Strict().DecodeString(text)
	return raw, err == nil && base64.RawURLEncoding.EncodeToString(raw) == text
}

// checkPayloadShape refuses every encoding of a token but one: the compact
// serialization, each part canonical unpadded base64url, a header without
// critical extensions, and a payload that is exactly one JSON object with
// distinct member names and nothing after it. Variants of a genuine token
// (padding, the standard alphabet, spare trailing bits, the JSON
// serialization, a decoy member) then never verify, nor enter the
// verified-token cache.
func checkPayloadShape(token string) error {
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return errors.New("token is not three dot-separated parts")
	}
	decoded := make([][]byte, 3)
	for i, part := range parts {
		raw, ok := decodeCanonical(part)
		if !ok {
			return errors.New("token part is not canonical base64url")
		}
		decoded[i] = raw
	}
	var header struct {
		Crit json.RawMessage `json:"crit"`
	}
	if err := json.Unmarshal(decoded[0], &header); err != nil {
		return errors.New("token header is not a JSON object")
	}
	if header.Crit != nil {
		return errors.New("token header names critical extensions, which Chit does not understand")
	}
	decoder := json.NewDecoder(bytes.NewReader(decoded[1]))
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
	if _, err := decoder.Token(); err != nil { // the closing brace
		return err
	}
	if _, err := decoder.Token(); err != io.EOF {
		return errors.New("token payload has data after its JSON object")
	}
	return nil
}
