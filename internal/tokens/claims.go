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

// ActorClaim names the acting party of a token issued by token exchange
// (RFC 8693 §4.1); MayActClaim the party a token's subject allows to act
// for it (§4.4).
const (
	ActorClaim  = "act"
	MayActClaim = "may_act"
)

// MaxActorDepth bounds a chain of delegations: a token's act claim names
// at most this many actors, nested. Each exchange adds one; an exchange past
// the bound is refused, and so is a token that carries a deeper chain. Four
// covers a gateway, a service and two hops behind it; longer chains are
// usually a loop.
const MaxActorDepth = 4

// Actor is an act claim: the party acting for the token's subject, and the
// one it acted for in turn (the previous exchange's actor).
type Actor struct {
	Subject string
	Actor   *Actor
}

// Depth is the number of actors in the chain that starts at a; 0 for nil.
func (a *Actor) Depth() int {
	depth := 0
	for ; a != nil; a = a.Actor {
		depth++
	}
	return depth
}

// claim is the act claim's JSON shape.
func (a *Actor) claim() map[string]any {
	claim := map[string]any{"sub": a.Subject}
	if a.Actor != nil {
		claim[ActorClaim] = a.Actor.claim()
	}
	return claim
}

var errMalformedActor = errors.New("act claim is not a chain of objects with a sub")

// parseActor reads an act (or may_act) claim as jwx decoded it: an object
// with a string sub and, for act, an optional nested act, at most
// MaxActorDepth deep.
func parseActor(raw any, depth int) (*Actor, error) {
	object, ok := raw.(map[string]any)
	if !ok || depth > MaxActorDepth {
		return nil, errMalformedActor
	}
	subject, ok := object["sub"].(string)
	if !ok || subject == "" {
		return nil, errMalformedActor
	}
	actor := &Actor{Subject: subject}
	if nested, ok := object[ActorClaim]; ok {
		var err error
		if actor.Actor, err = parseActor(nested, depth+1); err != nil {
			return nil, err
		}
	}
	return actor, nil
}
