package server

import (
	"context"
	"fmt"
	"math"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwa"

	"github.com/chit-auth/chit/internal/providers"
	"github.com/chit-auth/chit/internal/tokens"
)

func validConfig() Config {
	return Config{
		GRPCAddr: "127.0.0.1:0", HTTPAddr: "127.0.0.1:0",
		Tokens: tokens.Config{Issuer: "https://auth.example.com", Audience: "chit", AccessTokenTTL: 15 * time.Minute,
			RefreshTokenTTL: 24 * time.Hour, RefreshIdleTimeout: time.Hour},
		SigningAlgorithm:    jwa.ES256,
		Providers:           providers.Config{AccessTokenTTL: time.Minute, ClaimTTL: time.Hour},
		MaxConcurrentHashes: 1,
		HashQueueTimeout:    time.Second,
	}
}

// Each rule refuses its field by name, as a *ConfigError a program filling
// Config from flags can map to its flag.
func TestConfigValidateNamesTheField(t *testing.T) {
	t.Parallel()
	if err := validConfig().Validate(); err != nil {
		t.Fatalf("a valid configuration: %v", err)
	}
	for _, tc := range []struct {
		name    string
		breakIt func(*Config)
		field   string
		// than is the field the value is compared with, if any.
		than string
	}{
		{"gRPC address without host", func(c *Config) { c.GRPCAddr = "9090" }, "GRPCAddr", ""},
		{"empty HTTP address", func(c *Config) { c.HTTPAddr = "" }, "HTTPAddr", ""},
		{"operations address not host:port", func(c *Config) { c.OpsAddr = "ops" }, "OpsAddr", ""},
		{"pprof address without port", func(c *Config) { c.PprofAddr = "localhost:" }, "PprofAddr", ""},
		{"issuer with a query", func(c *Config) { c.Tokens.Issuer = "https://auth.example.com/?x=1" }, "Tokens.Issuer", ""},
		// An empty query or fragment is still one (it was accepted).
		{"issuer with an empty fragment", func(c *Config) { c.Tokens.Issuer = "https://auth.example.com/#" }, "Tokens.Issuer", ""},
		{"issuer with an empty query", func(c *Config) { c.Tokens.Issuer = "https://auth.example.com/?" }, "Tokens.Issuer", ""},
		{"issuer with a fragment", func(c *Config) { c.Tokens.Issuer = "https://auth.example.com#x" }, "Tokens.Issuer", ""},
		{"issuer not http(s)", func(c *Config) { c.Tokens.Issuer = "ftp://auth.example.com" }, "Tokens.Issuer", ""},
		{"issuer without host", func(c *Config) { c.Tokens.Issuer = "https:///path" }, "Tokens.Issuer", ""},
		{"blank audience", func(c *Config) { c.Tokens.Audience = " " }, "Tokens.Audience", ""},
		{"no access token lifetime", func(c *Config) { c.Tokens.AccessTokenTTL = 0 }, "Tokens.AccessTokenTTL", ""},
		{"refresh tokens shorter than access tokens", func(c *Config) { c.Tokens.RefreshTokenTTL, c.Tokens.RefreshIdleTimeout = time.Minute, time.Minute }, "Tokens.RefreshTokenTTL", "Tokens.AccessTokenTTL"},
		{"no refresh idle timeout", func(c *Config) { c.Tokens.RefreshIdleTimeout = 0 }, "Tokens.RefreshIdleTimeout", "Tokens.RefreshTokenTTL"},
		{"refresh idle timeout past the refresh lifetime", func(c *Config) { c.Tokens.RefreshIdleTimeout = 48 * time.Hour }, "Tokens.RefreshIdleTimeout", "Tokens.RefreshTokenTTL"},
		{"negative clock skew", func(c *Config) { c.Tokens.ClockSkew = -time.Second }, "Tokens.ClockSkew", ""},
		{"negative refresh grace period", func(c *Config) { c.Tokens.RefreshGracePeriod = -time.Second }, "Tokens.RefreshGracePeriod", ""},
		{"negative revocation cache", func(c *Config) { c.Tokens.RevocationCacheTTL = -time.Second }, "Tokens.RevocationCacheTTL", ""},
		{"negative request timeout", func(c *Config) { c.RequestTimeout = -time.Second }, "RequestTimeout", ""},
		{"negative shutdown timeout", func(c *Config) { c.ShutdownTimeout = -time.Second }, "ShutdownTimeout", ""},
		{"negative key rotation period", func(c *Config) { c.KeyRotationPeriod = -time.Hour }, "KeyRotationPeriod", ""},
		{"negative key check interval", func(c *Config) { c.KeyCheckInterval = -time.Second }, "KeyCheckInterval", ""},
		{"negative clean-up interval", func(c *Config) { c.CleanupInterval = -time.Second }, "CleanupInterval", ""},
		{"negative service account cache", func(c *Config) { c.ServiceAccountCacheTTL = -time.Second }, "ServiceAccountCacheTTL", ""},
		{"negative provider key pool", func(c *Config) { c.Providers.KeyPoolSize = -1 }, "Providers.KeyPoolSize", ""},
		{"negative connection age", func(c *Config) { c.GRPCConnections.MaxAge = -time.Minute }, "GRPCConnections.MaxAge", ""},
		{"negative connection age grace", func(c *Config) { c.GRPCConnections.MaxAgeGrace = -time.Second }, "GRPCConnections.MaxAgeGrace", ""},
		{"negative ping interval", func(c *Config) { c.GRPCConnections.MinPingInterval = -time.Second }, "GRPCConnections.MinPingInterval", ""},
		{"negative header bound", func(c *Config) { c.MaxHeaderBytes = -1 }, "MaxHeaderBytes", ""},
		{"header bound past 32 bits", func(c *Config) { c.MaxHeaderBytes = math.MaxUint32 + 1 }, "MaxHeaderBytes", ""},
		{"HMAC signing algorithm", func(c *Config) { c.SigningAlgorithm = "HS256" }, "SigningAlgorithm", ""},
		{"no provider token lifetime", func(c *Config) { c.Providers.AccessTokenTTL = 0 }, "Providers.AccessTokenTTL", ""},
		{"no provider claim lifetime", func(c *Config) { c.Providers.ClaimTTL = 0 }, "Providers.ClaimTTL", ""},
		{"no hashing slot", func(c *Config) { c.MaxConcurrentHashes = 0 }, "MaxConcurrentHashes", ""},
		{"no hashing queue timeout", func(c *Config) { c.HashQueueTimeout = 0 }, "HashQueueTimeout", ""},
		// A sign-in waits for its hashing slot within its call's time.
		{"hashing queue as long as the request", func(c *Config) { c.RequestTimeout = c.HashQueueTimeout }, "HashQueueTimeout", "RequestTimeout"},
		{"orchestrator not a service name", func(c *Config) { c.Orchestrators = []string{"not a name"} }, "Orchestrators", ""},
		{"allowed origin with a path", func(c *Config) { c.AllowedOrigins = []string{"https://spa.example/app"} }, "AllowedOrigins", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := validConfig()
			tc.breakIt(&cfg)
			err := cfg.Validate()
			if err == nil || !strings.Contains(err.Error(), "server.Config."+tc.field+" ") {
				t.Fatalf("got %v, want an error naming server.Config.%s", err, tc.field)
			}
			problems := ConfigErrors(err)
			if len(problems) != 1 || problems[0].Field != tc.field || problems[0].Than != tc.than || problems[0].Problem == "" {
				t.Fatalf("ConfigErrors = %+v, want one on %s (than %q)", problems, tc.field, tc.than)
			}
		})
	}
	cfg := validConfig()
	cfg.RequestTimeout = cfg.HashQueueTimeout
	if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), "server.Config.HashQueueTimeout must be shorter than RequestTimeout") {
		t.Errorf("a hashing queue timeout as long as the request timeout: %v", err)
	}
	cfg = validConfig()
	cfg.GRPCAddr, cfg.Tokens.Audience = "", ""
	err := cfg.Validate()
	if err == nil || !strings.Contains(err.Error(), "GRPCAddr") || !strings.Contains(err.Error(), "Tokens.Audience") {
		t.Fatalf("two problems at once: %v", err)
	}
	if problems := ConfigErrors(fmt.Errorf("wrapped: %w", err)); len(problems) != 2 || problems[0].Field != "GRPCAddr" || problems[1].Field != "Tokens.Audience" {
		t.Fatalf("ConfigErrors of two problems, wrapped = %+v, want GRPCAddr then Tokens.Audience", problems)
	}
	cfg = validConfig()
	cfg.Tokens.AccessTokenTTL, cfg.Tokens.RefreshTokenTTL, cfg.Tokens.RefreshIdleTimeout = -time.Minute, 0, 0
	var fields []string
	for _, problem := range ConfigErrors(cfg.Validate()) {
		fields = append(fields, problem.Field)
	}
	if want := []string{"Tokens.AccessTokenTTL", "Tokens.RefreshTokenTTL", "Tokens.RefreshIdleTimeout"}; !slices.Equal(fields, want) {
		t.Fatalf("three bad lifetimes name %v, want every one: %v", fields, want)
	}
}

// New refuses an invalid configuration before it touches the store or binds
// a port.
func TestNewRefusesAnInvalidConfiguration(t *testing.T) {
	t.Parallel()
	cfg := validConfig()
	cfg.Tokens.AccessTokenTTL = 0
	_, err := New(context.Background(), cfg, nil)
	if err == nil || !strings.Contains(err.Error(), "Tokens.AccessTokenTTL") {
		t.Fatalf("New with an invalid configuration: %v", err)
	}
	if problems := ConfigErrors(err); len(problems) != 1 || problems[0].Field != "Tokens.AccessTokenTTL" {
		t.Fatalf("ConfigErrors of New's error = %+v", problems)
	}
}
