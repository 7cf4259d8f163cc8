package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jwk"
	"github.com/lestrrat-go/jwx/v2/jwt"
)

// The workload federation scenario's issuer: a rule trusts it with keys
// read from a file, so that no JWKS fetch is measured (the keys of a
// discovered issuer are cached as well).
const (
	benchFederationIssuer   = "https://workloads.bench.example"
	benchFederationAudience = "chit-bench"
	benchFederationSubject  = "system:serviceaccount:bench:worker"
	// benchExchangeAudience is the audience the token exchange scenario's
	// service exchanges the tokens it receives for.
	benchExchangeAudience = "bench-downstream"
)

// grantFixtures are what the scenarios of the grants added after the
// first suite need, made with chitd's commands before it serves. A binary
// that lacks a command leaves its fields empty: that scenario's setup then
// fails alone.
type grantFixtures struct {
	// exchangerBasic authenticates the service that exchanges the tokens
	// it receives; callerBasic the service that sends them, whose tokens
	// may be addressed to the exchanger (exchangerID).
	exchangerBasic, callerBasic, exchangerID string
	// federationForm is a jwt-bearer request with an assertion of the
	// bench issuer, valid for the whole run and presented again and again,
	// as a platform's token is.
	federationForm []byte
}

// makeGrantFixtures runs chitd's commands on store (the arguments naming
// it) and writes files in dir; it returns what failed, if anything.
func makeGrantFixtures(chitd string, store []string, dir string) (grantFixtures, string) {
	var f grantFixtures
	var problems []string
	run := func(args ...string) ([]byte, error) {
		out, err := exec.Command(chitd, append(args, store...)...).CombinedOutput()
		if err != nil {
			return out, fmt.Errorf("chitd %s: %v %s", strings.Join(args, " "), err, out)
		}
		return out, nil
	}

	// Token exchange: a caller holds a token addressed to the exchanger,
	// which exchanges it for one addressed downstream (delegation: act
	// names the exchanger).
	suffix := fmt.Sprint(time.Now().UnixNano())
	exchanger := "bench-exchanger-" + suffix
	out, err := run("service", "create", exchanger, "--allow-token-exchange", benchExchangeAudience)
	if err == nil {
		exchangerID, exchangerSecret := serviceCredentials(out)
		out, err = run("service", "create", "bench-caller-"+suffix, "--audience", exchangerID)
		if err == nil {
			f.exchangerBasic, f.exchangerID = basicAuthorization(exchangerID, exchangerSecret), exchangerID
			f.callerBasic = basicAuthorization(serviceCredentials(out))
		}
	}
	if err != nil {
		problems = append(problems, err.Error())
	}

	// Workload federation.
	if form, err := federationFixture(run, dir); err != nil {
		problems = append(problems, err.Error())
	} else {
		f.federationForm = form
	}
	return f, strings.Join(problems, "; ")
}

func basicAuthorization(id, secret string) string {
	// RFC 6749 §2.3.1: Basic's parts are form-urlencoded first.
	return "Basic " + base64.StdEncoding.EncodeToString([]byte(url.QueryEscape(id)+":"+url.QueryEscape(secret)))
}

// federationFixture makes a service account, an ES256 issuer key whose
// JWKS a rule trusts, and a signed assertion; it returns the jwt-bearer
// form.
func federationFixture(run func(args ...string) ([]byte, error), dir string) ([]byte, error) {
	raw, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	private, err := jwk.FromRaw(raw)
	if err != nil {
		return nil, err
	}
	for name, value := range map[string]any{jwk.KeyIDKey: "bench-1", jwk.AlgorithmKey: jwa.ES256} {
		if err := private.Set(name, value); err != nil {
			return nil, err
		}
	}
	public, err := private.PublicKey()
	if err != nil {
		return nil, err
	}
	set := jwk.NewSet()
	if err := set.AddKey(public); err != nil {
		return nil, err
	}
	jwks, err := json.Marshal(set)
	if err != nil {
		return nil, err
	}
	jwksFile := filepath.Join(dir, "bench-issuer-jwks.json")
	if err := os.WriteFile(jwksFile, jwks, 0o600); err != nil {
		return nil, err
	}
	suffix := fmt.Sprint(time.Now().UnixNano())
	service := "bench-workload-" + suffix
	if _, err := run("service", "create", service); err != nil {
		return nil, err
	}
	if _, err := run("federation", "create", "bench-"+suffix, "--issuer", benchFederationIssuer, "--audience", benchFederationAudience,
		"--service", service, "--claim", "sub="+benchFederationSubject, "--jwks-file", jwksFile); err != nil {
		return nil, err
	}
	now := time.Now()
	token, err := jwt.NewBuilder().Issuer(benchFederationIssuer).Subject(benchFederationSubject).Audience([]string{benchFederationAudience}).
		IssuedAt(now).NotBefore(now).Expiration(now.Add(55 * time.Minute)).JwtID("bench-" + suffix).Build()
	if err != nil {
		return nil, err
	}
	signed, err := jwt.Sign(token, jwt.WithKey(jwa.ES256, private))
	if err != nil {
		return nil, err
	}
	return []byte("grant_type=" + url.QueryEscape("urn:ietf:params:oauth:grant-type:jwt-bearer") + "&assertion=" + url.QueryEscape(string(signed))), nil
}
