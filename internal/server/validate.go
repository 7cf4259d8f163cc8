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

// Validate reports every field of cfg the server cannot run with, each
// error naming its field. New calls it first; chitd also checks its own
// policy (https issuers, minimum hashing costs, ...) and names its flags.
func (cfg Config) Validate() error {
	var problems []error
	fail := func(field, format string, args ...any) {
		problems = append(problems, fmt.Errorf("server.Config.%s "+format, append([]any{field}, args...)...))
	}
	for field, addr := range map[string]string{"GRPCAddr": cfg.GRPCAddr, "HTTPAddr": cfg.HTTPAddr} {
		if !isHostPort(addr) {
			fail(field, "%q is not host:port", addr)
		}
	}
	for field, addr := range map[string]string{"OpsAddr": cfg.OpsAddr, "PprofAddr": cfg.PprofAddr} {
		if addr != "" && !isHostPort(addr) {
			fail(field, "%q is not host:port", addr)
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
	switch {
	case t.AccessTokenTTL <= 0:
		fail("Tokens.AccessTokenTTL", "must be positive")
	case t.RefreshTokenTTL <= t.AccessTokenTTL:
		fail("Tokens.RefreshTokenTTL", "must be longer than Tokens.AccessTokenTTL")
	case t.RefreshIdleTimeout <= 0 || t.RefreshIdleTimeout > t.RefreshTokenTTL:
		fail("Tokens.RefreshIdleTimeout", "must be positive and at most Tokens.RefreshTokenTTL")
	}
	for field, value := range map[string]int64{
		"Tokens.ClockSkew": int64(t.ClockSkew), "Tokens.RefreshGracePeriod": int64(t.RefreshGracePeriod),
		"Tokens.RevocationCacheTTL": int64(t.RevocationCacheTTL), "RequestTimeout": int64(cfg.RequestTimeout),
		"ShutdownTimeout": int64(cfg.ShutdownTimeout), "KeyRotationPeriod": int64(cfg.KeyRotationPeriod),
		"KeyCheckInterval": int64(cfg.KeyCheckInterval), "CleanupInterval": int64(cfg.CleanupInterval),
		"ServiceAccountCacheTTL": int64(cfg.ServiceAccountCacheTTL), "Providers.KeyPoolSize": int64(cfg.Providers.KeyPoolSize),
		"GRPCConnections.MaxAge": int64(cfg.GRPCConnections.MaxAge), "GRPCConnections.MaxAgeGrace": int64(cfg.GRPCConnections.MaxAgeGrace),
		"GRPCConnections.MinPingInterval": int64(cfg.GRPCConnections.MinPingInterval), "MaxHeaderBytes": int64(cfg.MaxHeaderBytes),
	} {
		if value < 0 {
			fail(field, "must not be negative")
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
		fail("HashQueueTimeout", "must be shorter than RequestTimeout")
	}
	for _, name := range cfg.Orchestrators {
		if accounts.ValidateName("service", name) != nil {
			fail("Orchestrators", "%q is not a service name", name)
		}
	}
	return errors.Join(problems...)
}

func isHostPort(addr string) bool {
	_, port, err := net.SplitHostPort(addr)
	return err == nil && port != ""
}
