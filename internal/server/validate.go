package server

import (
	"errors"
	"fmt"
	"math"
	"net"
	"net/url"
	"strings"

	"github.com/chit-auth/chit/internal/accounts"
	"github.com/chit-auth/chit/internal/keys"
)

// ConfigError is one field of a Config the server cannot run with. Field and
// Than are paths in Config ("Tokens.Issuer"), so that a program filling
// Config from flags can name its flags instead (cmd/chitd does).
type ConfigError struct {
	Field string
	// Problem says what is wrong with the field's value.
	Problem string
	// Than, when set, is the field the value was compared with: Problem
	// then ends with the comparison ("must be longer than").
	Than string
}

func (e *ConfigError) Error() string {
	message := "server.Config." + e.Field + " " + e.Problem
	if e.Than != "" {
		message += " " + e.Than
	}
	return message
}

// ConfigErrors lists the *ConfigError values in err (Validate's answer, or
// New's, which wraps it).
func ConfigErrors(err error) []*ConfigError {
	switch e := err.(type) {
	case *ConfigError:
		return []*ConfigError{e}
	case interface{ Unwrap() []error }:
		var found []*ConfigError
		for _, inner := range e.Unwrap() {
			found = append(found, ConfigErrors(inner)...)
		}
		return found
	case interface{ Unwrap() error }:
		return ConfigErrors(e.Unwrap())
	}
	return nil
}

// Validate is the one set of rules a Config must meet: it reports every
// field the server cannot run with at once, each as a *ConfigError. New
// calls it first; chitd calls it too, naming its flags instead of the
// fields, and adds only rules of its own: limits stricter than these (https
// issuers, minimum hashing costs, bounds on lifetimes) and rules on flags
// Config does not have.
func (cfg Config) Validate() error {
	var problems []error
	fail := func(field, format string, args ...any) {
		problems = append(problems, &ConfigError{Field: field, Problem: fmt.Sprintf(format, args...)})
	}
	failThan := func(field, problem, than string) {
		problems = append(problems, &ConfigError{Field: field, Problem: problem, Than: than})
	}
	// Slices, not maps, keep the problems in the same order every time.
	for _, a := range []struct {
		field, addr string
		optional    bool
	}{{"GRPCAddr", cfg.GRPCAddr, false}, {"HTTPAddr", cfg.HTTPAddr, false}, {"OpsAddr", cfg.OpsAddr, true}, {"PprofAddr", cfg.PprofAddr, true}} {
		if !(a.optional && a.addr == "") && !isHostPort(a.addr) {
			fail(a.field, "%q is not host:port", a.addr)
		}
	}
	if issuer, err := url.Parse(cfg.Tokens.Issuer); err != nil || issuer.Host == "" || (issuer.Scheme != "https" && issuer.Scheme != "http") ||
		strings.ContainsAny(cfg.Tokens.Issuer, "?#") {
		// An empty query or fragment is one too (OIDC Discovery §3: the issuer has neither).
		fail("Tokens.Issuer", "%q must be an absolute http(s) URL without query or fragment", cfg.Tokens.Issuer)
	}
	if strings.TrimSpace(cfg.Tokens.Audience) == "" {
		fail("Tokens.Audience", "must not be empty")
	}
	t := cfg.Tokens
	// Each lifetime is checked on its own, so that one run names every
	// lifetime to fix.
	if t.AccessTokenTTL <= 0 {
		fail("Tokens.AccessTokenTTL", "must be positive")
	}
	if t.RefreshTokenTTL <= max(t.AccessTokenTTL, 0) {
		failThan("Tokens.RefreshTokenTTL", "must be longer than", "Tokens.AccessTokenTTL")
	}
	if t.RefreshIdleTimeout <= 0 || (t.RefreshTokenTTL > 0 && t.RefreshIdleTimeout > t.RefreshTokenTTL) {
		failThan("Tokens.RefreshIdleTimeout", "must be positive and at most", "Tokens.RefreshTokenTTL")
	}
	for _, v := range []struct {
		field string
		value int64
	}{
		{"Tokens.ClockSkew", int64(t.ClockSkew)}, {"Tokens.RefreshGracePeriod", int64(t.RefreshGracePeriod)},
		{"Tokens.RevocationCacheTTL", int64(t.RevocationCacheTTL)}, {"RequestTimeout", int64(cfg.RequestTimeout)},
		{"ShutdownTimeout", int64(cfg.ShutdownTimeout)}, {"KeyRotationPeriod", int64(cfg.KeyRotationPeriod)},
		{"KeyCheckInterval", int64(cfg.KeyCheckInterval)}, {"CleanupInterval", int64(cfg.CleanupInterval)},
		{"ServiceAccountCacheTTL", int64(cfg.ServiceAccountCacheTTL)}, {"Providers.KeyPoolSize", int64(cfg.Providers.KeyPoolSize)},
		{"GRPCConnections.MaxAge", int64(cfg.GRPCConnections.MaxAge)}, {"GRPCConnections.MaxAgeGrace", int64(cfg.GRPCConnections.MaxAgeGrace)},
		{"GRPCConnections.MinPingInterval", int64(cfg.GRPCConnections.MinPingInterval)}, {"MaxHeaderBytes", int64(cfg.MaxHeaderBytes)},
	} {
		if v.value < 0 {
			fail(v.field, "must not be negative")
		}
	}
	if int64(cfg.MaxHeaderBytes) > math.MaxUint32 {
		fail("MaxHeaderBytes", "%d exceeds HTTP/2's SETTINGS_MAX_HEADER_LIST_SIZE (32 bits)", cfg.MaxHeaderBytes)
	}
	if _, err := keys.ParseAlgorithm(string(cfg.SigningAlgorithm)); err != nil {
		fail("SigningAlgorithm", "%q: use ES256, EdDSA or RS256", cfg.SigningAlgorithm)
	}
	if cfg.Providers.AccessTokenTTL <= 0 {
		fail("Providers.AccessTokenTTL", "must be positive")
	}
	if cfg.Providers.ClaimTTL <= 0 {
		fail("Providers.ClaimTTL", "must be positive")
	}
	if cfg.MaxConcurrentHashes < 1 {
		fail("MaxConcurrentHashes", "must be at least 1")
	}
	if cfg.HashQueueTimeout <= 0 {
		fail("HashQueueTimeout", "must be positive")
	} else if cfg.RequestTimeout > 0 && cfg.HashQueueTimeout >= cfg.RequestTimeout {
		// A sign-in waits for a hashing slot within its call's time: a queue
		// timeout as long as the call's could never end a wait.
		failThan("HashQueueTimeout", "must be shorter than", "RequestTimeout")
	}
	if cfg.Sessions.Lifetime < 0 {
		fail("Sessions.Lifetime", "must not be negative (0 disables sign-in sessions)")
	} else if cfg.Sessions.Lifetime > 0 && (cfg.Sessions.IdleTimeout <= 0 || cfg.Sessions.IdleTimeout > cfg.Sessions.Lifetime) {
		failThan("Sessions.IdleTimeout", "must be positive and at most", "Sessions.Lifetime")
	}
	if cfg.Sessions.MaxPerUser < 0 {
		fail("Sessions.MaxPerUser", "must not be negative")
	}
	for _, name := range cfg.Orchestrators {
		if accounts.ValidateName("service", name) != nil {
			fail("Orchestrators", "%q is not a service name", name)
		}
	}
	for _, origin := range cfg.AllowedOrigins {
		if accounts.ValidateOrigins([]string{origin}) != nil {
			fail("AllowedOrigins", "%q is not an origin: write it as a browser sends it, https://host[:port] (http only on localhost or a loopback address)", origin)
		}
	}
	return errors.Join(problems...)
}

func isHostPort(addr string) bool {
	_, port, err := net.SplitHostPort(addr)
	return err == nil && port != ""
}
