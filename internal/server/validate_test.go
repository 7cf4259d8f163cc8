package server

import (
	"context"
	"math"
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

// Every field the server cannot run with is refused, by name, all at once.
func TestConfigValidateNamesTheField(t *testing.T) {
	if err := validConfig().Validate(); err != nil {
		t.Fatalf("a valid configuration: %v", err)
	}
	for field, breakIt := range map[string]func(*Config){
		"GRPCAddr":                    func(c *Config) { c.GRPCAddr = "9090" },
		"HTTPAddr":                    func(c *Config) { c.HTTPAddr = "" },
		"OpsAddr":                     func(c *Config) { c.OpsAddr = "ops" },
		"Tokens.Issuer":               func(c *Config) { c.Tokens.Issuer = "https://auth.example.com/?x=1" },
		"Tokens.Audience":             func(c *Config) { c.Tokens.Audience = " " },
		"Tokens.AccessTokenTTL":       func(c *Config) { c.Tokens.AccessTokenTTL = 0 },
		"Tokens.RefreshTokenTTL":      func(c *Config) { c.Tokens.RefreshTokenTTL = time.Minute },
		"Tokens.RefreshIdleTimeout":   func(c *Config) { c.Tokens.RefreshIdleTimeout = 48 * time.Hour },
		"Tokens.RefreshGracePeriod":   func(c *Config) { c.Tokens.RefreshGracePeriod = -time.Second },
		"SigningAlgorithm":            func(c *Config) { c.SigningAlgorithm = "HS256" },
		"Providers.ClaimTTL":          func(c *Config) { c.Providers.ClaimTTL = 0 },
		"Providers.KeyPoolSize":       func(c *Config) { c.Providers.KeyPoolSize = -1 },
		"MaxConcurrentHashes":         func(c *Config) { c.MaxConcurrentHashes = 0 },
		"HashQueueTimeout":            func(c *Config) { c.HashQueueTimeout = 0 },
		"Orchestrators":               func(c *Config) { c.Orchestrators = []string{"not a name"} },
		"GRPCConnections.MaxAge":      func(c *Config) { c.GRPCConnections.MaxAge = -time.Minute },
		"ShutdownTimeout":             func(c *Config) { c.ShutdownTimeout = -time.Second },
		"Tokens.RevocationCacheTTL":   func(c *Config) { c.Tokens.RevocationCacheTTL = -time.Second },
		"GRPCConnections.MaxAgeGrace": func(c *Config) { c.GRPCConnections.MaxAgeGrace = -time.Second },
		"MaxHeaderBytes":              func(c *Config) { c.MaxHeaderBytes = -1 },
	} {
		cfg := validConfig()
		breakIt(&cfg)
		err := cfg.Validate()
		if err == nil || !strings.Contains(err.Error(), "server.Config."+field+" ") {
			t.Errorf("%s broken: %v", field, err)
		}
	}
	// An empty query or fragment is still one (it was accepted).
	for _, issuer := range []string{"https://auth.example.com/#", "https://auth.example.com/?", "https://auth.example.com#x"} {
		cfg := validConfig()
		cfg.Tokens.Issuer = issuer
		if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), "server.Config.Tokens.Issuer ") {
			t.Errorf("issuer %q: %v", issuer, err)
		}
	}
	cfg := validConfig()
	cfg.MaxHeaderBytes = math.MaxUint32 + 1
	if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), "server.Config.MaxHeaderBytes ") {
		t.Errorf("MaxHeaderBytes past 32 bits: %v", err)
	}
	cfg = validConfig()
	cfg.RequestTimeout = cfg.HashQueueTimeout
	if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), "server.Config.HashQueueTimeout must be shorter than RequestTimeout") {
		t.Errorf("a hashing queue timeout as long as the request timeout: %v", err)
	}
	cfg = validConfig()
	cfg.GRPCAddr, cfg.Tokens.Audience = "", ""
	if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), "GRPCAddr") || !strings.Contains(err.Error(), "Tokens.Audience") {
		t.Fatalf("two problems at once: %v", err)
	}
}

// New refuses an invalid configuration before it touches the store or binds
// a port.
func TestNewRefusesAnInvalidConfiguration(t *testing.T) {
	cfg := validConfig()
	cfg.Tokens.AccessTokenTTL = 0
	if _, err := New(context.Background(), cfg, nil); err == nil || !strings.Contains(err.Error(), "Tokens.AccessTokenTTL") {
		t.Fatalf("New with an invalid configuration: %v", err)
	}
}
