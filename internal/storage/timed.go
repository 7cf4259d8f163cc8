package storage

import (
	"context"
	"time"
)

// Timed wraps a Store so that every call's duration is reported to observe,
// named by its method (for the store-latency metric). It adds one clock read
// and one function call per operation.
func Timed(store Store, observe func(operation string, took time.Duration)) Store {
	return &timedStore{store: store, observe: observe}
}

type timedStore struct {
	store   Store
	observe func(string, time.Duration)
}

func (s *timedStore) done(operation string, start time.Time) { s.observe(operation, time.Since(start)) }

// The methods follow Store's domains, in its order.

// Logins (logins.go).

func (s *timedStore) CreateRefreshToken(ctx context.Context, token RefreshToken) error {
	defer s.done("CreateRefreshToken", time.Now())
	return s.store.CreateRefreshToken(ctx, token)
}

func (s *timedStore) GetRefreshToken(ctx context.Context, familyID string, hash []byte) (RefreshToken, error) {
	defer s.done("GetRefreshToken", time.Now())
	return s.store.GetRefreshToken(ctx, familyID, hash)
}

func (s *timedStore) GetRefreshTokenWithUser(ctx context.Context, familyID string, hash []byte) (RefreshToken, *User, error) {
	defer s.done("GetRefreshTokenWithUser", time.Now())
	return s.store.GetRefreshTokenWithUser(ctx, familyID, hash)
}

func (s *timedStore) RotateRefreshToken(ctx context.Context, oldHash []byte, successor RefreshToken, sealedSuccessor []byte) error {
	defer s.done("RotateRefreshToken", time.Now())
	return s.store.RotateRefreshToken(ctx, oldHash, successor, sealedSuccessor)
}

func (s *timedStore) GetRefreshLogin(ctx context.Context, familyID string) (RefreshToken, error) {
	defer s.done("GetRefreshLogin", time.Now())
	return s.store.GetRefreshLogin(ctx, familyID)
}

func (s *timedStore) ListLogins(ctx context.Context, subject string, now time.Time, page Page) ([]RefreshToken, error) {
	defer s.done("ListLogins", time.Now())
	return s.store.ListLogins(ctx, subject, now, page)
}

func (s *timedStore) DeleteExpiredRefreshTokens(ctx context.Context, cutoff time.Time) (int, error) {
	defer s.done("DeleteExpiredRefreshTokens", time.Now())
	return s.store.DeleteExpiredRefreshTokens(ctx, cutoff)
}

// APIKeys (apikeys.go).

func (s *timedStore) CreateAPIKey(ctx context.Context, key APIKey) error {
	defer s.done("CreateAPIKey", time.Now())
	return s.store.CreateAPIKey(ctx, key)
}

func (s *timedStore) GetAPIKey(ctx context.Context, id string) (APIKey, error) {
	defer s.done("GetAPIKey", time.Now())
	return s.store.GetAPIKey(ctx, id)
}

func (s *timedStore) ListAPIKeys(ctx context.Context, subject string, page Page) ([]APIKey, error) {
	defer s.done("ListAPIKeys", time.Now())
	return s.store.ListAPIKeys(ctx, subject, page)
}

func (s *timedStore) DeleteAPIKey(ctx context.Context, id string, revokedAt time.Time) error {
	defer s.done("DeleteAPIKey", time.Now())
	return s.store.DeleteAPIKey(ctx, id, revokedAt)
}

func (s *timedStore) DeleteExpiredAPIKeys(ctx context.Context, cutoff time.Time) (int, error) {
	defer s.done("DeleteExpiredAPIKeys", time.Now())
	return s.store.DeleteExpiredAPIKeys(ctx, cutoff)
}

// Revocations (revocations.go).

func (s *timedStore) RevokeRefreshFamily(ctx context.Context, familyID string, revokedAt time.Time) (int, error) {
	defer s.done("RevokeRefreshFamily", time.Now())
	return s.store.RevokeRefreshFamily(ctx, familyID, revokedAt)
}

func (s *timedStore) RevokeSubject(ctx context.Context, subject string, revokedAt time.Time) (int, error) {
	defer s.done("RevokeSubject", time.Now())
	return s.store.RevokeSubject(ctx, subject, revokedAt)
}

func (s *timedStore) RefuseAccessTokens(ctx context.Context, revoke SubjectRevocation) error {
	defer s.done("RefuseAccessTokens", time.Now())
	return s.store.RefuseAccessTokens(ctx, revoke)
}

func (s *timedStore) GetRevocation(ctx context.Context, familyID, subject, client string) (Revocation, error) {
	defer s.done("GetRevocation", time.Now())
	return s.store.GetRevocation(ctx, familyID, subject, client)
}

func (s *timedStore) DeleteExpiredRevocations(ctx context.Context, cutoff time.Time) (int, error) {
	defer s.done("DeleteExpiredRevocations", time.Now())
	return s.store.DeleteExpiredRevocations(ctx, cutoff)
}

// Revocation events (revocationevents.go).

func (s *timedStore) ListRevocationEvents(ctx context.Context, after RevocationCursor, limit int) ([]RevocationEvent, error) {
	defer s.done("ListRevocationEvents", time.Now())
	return s.store.ListRevocationEvents(ctx, after, limit)
}

func (s *timedStore) RevocationBounds(ctx context.Context) (RevocationBounds, error) {
	defer s.done("RevocationBounds", time.Now())
	return s.store.RevocationBounds(ctx)
}

// Users (principals.go).

func (s *timedStore) CreateUser(ctx context.Context, user User) error {
	defer s.done("CreateUser", time.Now())
	return s.store.CreateUser(ctx, user)
}

func (s *timedStore) GetUser(ctx context.Context, name string) (User, error) {
	defer s.done("GetUser", time.Now())
	return s.store.GetUser(ctx, name)
}

func (s *timedStore) ListUsers(ctx context.Context, page Page) ([]User, error) {
	defer s.done("ListUsers", time.Now())
	return s.store.ListUsers(ctx, page)
}

func (s *timedStore) UpdatePasswordHash(ctx context.Context, name, oldHash, newHash string) error {
	defer s.done("UpdatePasswordHash", time.Now())
	return s.store.UpdatePasswordHash(ctx, name, oldHash, newHash)
}

func (s *timedStore) UpdateUser(ctx context.Context, name string, update func(*User) (*SubjectRevocation, error)) error {
	defer s.done("UpdateUser", time.Now())
	return s.store.UpdateUser(ctx, name, update)
}

func (s *timedStore) DeleteUser(ctx context.Context, name string, revoke SubjectRevocation) error {
	defer s.done("DeleteUser", time.Now())
	return s.store.DeleteUser(ctx, name, revoke)
}

// ServiceAccounts (principals.go).

func (s *timedStore) CreateServiceAccount(ctx context.Context, account ServiceAccount) error {
	defer s.done("CreateServiceAccount", time.Now())
	return s.store.CreateServiceAccount(ctx, account)
}

func (s *timedStore) GetServiceAccount(ctx context.Context, clientID string) (ServiceAccount, error) {
	defer s.done("GetServiceAccount", time.Now())
	return s.store.GetServiceAccount(ctx, clientID)
}

func (s *timedStore) ListServiceAccounts(ctx context.Context, page Page) ([]ServiceAccount, error) {
	defer s.done("ListServiceAccounts", time.Now())
	return s.store.ListServiceAccounts(ctx, page)
}

func (s *timedStore) UpdateServiceAccount(ctx context.Context, clientID string, update func(*ServiceAccount) (*SubjectRevocation, error)) error {
	defer s.done("UpdateServiceAccount", time.Now())
	return s.store.UpdateServiceAccount(ctx, clientID, update)
}

func (s *timedStore) DeleteServiceAccount(ctx context.Context, clientID string, revoke SubjectRevocation) error {
	defer s.done("DeleteServiceAccount", time.Now())
	return s.store.DeleteServiceAccount(ctx, clientID, revoke)
}

// Clients (principals.go).

func (s *timedStore) CreateClient(ctx context.Context, client Client) error {
	defer s.done("CreateClient", time.Now())
	return s.store.CreateClient(ctx, client)
}

func (s *timedStore) GetClient(ctx context.Context, id string) (Client, error) {
	defer s.done("GetClient", time.Now())
	return s.store.GetClient(ctx, id)
}

func (s *timedStore) ListClients(ctx context.Context, page Page) ([]Client, error) {
	defer s.done("ListClients", time.Now())
	return s.store.ListClients(ctx, page)
}

func (s *timedStore) UpdateClient(ctx context.Context, id string, update func(*Client) (*SubjectRevocation, error)) error {
	defer s.done("UpdateClient", time.Now())
	return s.store.UpdateClient(ctx, id, update)
}

func (s *timedStore) DeleteClient(ctx context.Context, id string, revoke SubjectRevocation) error {
	defer s.done("DeleteClient", time.Now())
	return s.store.DeleteClient(ctx, id, revoke)
}

// ClientOrigins (origins.go).

func (s *timedStore) SetClientOrigins(ctx context.Context, clientID string, origins []string) error {
	defer s.done("SetClientOrigins", time.Now())
	return s.store.SetClientOrigins(ctx, clientID, origins)
}

func (s *timedStore) GetClientOrigins(ctx context.Context, clientID string) ([]string, error) {
	defer s.done("GetClientOrigins", time.Now())
	return s.store.GetClientOrigins(ctx, clientID)
}

func (s *timedStore) ListClientOrigins(ctx context.Context) ([]string, error) {
	defer s.done("ListClientOrigins", time.Now())
	return s.store.ListClientOrigins(ctx)
}

// ClientLogoutSettings (clientlogout.go).

func (s *timedStore) SetClientLogout(ctx context.Context, clientID string, settings ClientLogout) error {
	defer s.done("SetClientLogout", time.Now())
	return s.store.SetClientLogout(ctx, clientID, settings)
}

func (s *timedStore) GetClientLogout(ctx context.Context, clientID string) (ClientLogout, error) {
	defer s.done("GetClientLogout", time.Now())
	return s.store.GetClientLogout(ctx, clientID)
}

// SigningKeys (signingkeys.go).

func (s *timedStore) CreateSigningKey(ctx context.Context, key SigningKey) error {
	defer s.done("CreateSigningKey", time.Now())
	return s.store.CreateSigningKey(ctx, key)
}

func (s *timedStore) ListSigningKeys(ctx context.Context) ([]SigningKey, error) {
	defer s.done("ListSigningKeys", time.Now())
	return s.store.ListSigningKeys(ctx)
}

func (s *timedStore) RotateSigningKeys(ctx context.Context, expectedNextID string, newNext SigningKey, at time.Time) error {
	defer s.done("RotateSigningKeys", time.Now())
	return s.store.RotateSigningKeys(ctx, expectedNextID, newNext, at)
}

func (s *timedStore) RetireSigningKeyFamily(ctx context.Context, algorithm string, at time.Time) (int, error) {
	defer s.done("RetireSigningKeyFamily", time.Now())
	return s.store.RetireSigningKeyFamily(ctx, algorithm, at)
}

func (s *timedStore) DeleteRetiredSigningKeys(ctx context.Context, cutoff, deletedAt time.Time) (int, error) {
	defer s.done("DeleteRetiredSigningKeys", time.Now())
	return s.store.DeleteRetiredSigningKeys(ctx, cutoff, deletedAt)
}

func (s *timedStore) ReplaceSigningPrivateKey(ctx context.Context, id string, current, replacement []byte) error {
	defer s.done("ReplaceSigningPrivateKey", time.Now())
	return s.store.ReplaceSigningPrivateKey(ctx, id, current, replacement)
}

// RefreshTokenKeys (signingkeys.go).

func (s *timedStore) CreateRefreshTokenKey(ctx context.Context, key RefreshTokenKey) error {
	defer s.done("CreateRefreshTokenKey", time.Now())
	return s.store.CreateRefreshTokenKey(ctx, key)
}

func (s *timedStore) ListRefreshTokenKeys(ctx context.Context) ([]RefreshTokenKey, error) {
	defer s.done("ListRefreshTokenKeys", time.Now())
	return s.store.ListRefreshTokenKeys(ctx)
}

func (s *timedStore) ReplaceRefreshTokenKeySecret(ctx context.Context, id uint32, current, replacement []byte) error {
	defer s.done("ReplaceRefreshTokenKeySecret", time.Now())
	return s.store.ReplaceRefreshTokenKeySecret(ctx, id, current, replacement)
}

// Providers (providers.go).

func (s *timedStore) CreateProviders(ctx context.Context, providers []Provider) error {
	defer s.done("CreateProviders", time.Now())
	return s.store.CreateProviders(ctx, providers)
}

func (s *timedStore) GetProvider(ctx context.Context, id string) (Provider, error) {
	defer s.done("GetProvider", time.Now())
	return s.store.GetProvider(ctx, id)
}

func (s *timedStore) GetProviderByClaimToken(ctx context.Context, claimTokenHash []byte) (Provider, error) {
	defer s.done("GetProviderByClaimToken", time.Now())
	return s.store.GetProviderByClaimToken(ctx, claimTokenHash)
}

func (s *timedStore) GetProviderByRefreshToken(ctx context.Context, refreshTokenHash []byte) (Provider, error) {
	defer s.done("GetProviderByRefreshToken", time.Now())
	return s.store.GetProviderByRefreshToken(ctx, refreshTokenHash)
}

func (s *timedStore) GetProviderByKeyID(ctx context.Context, keyID string) (Provider, error) {
	defer s.done("GetProviderByKeyID", time.Now())
	return s.store.GetProviderByKeyID(ctx, keyID)
}

func (s *timedStore) ListProviders(ctx context.Context, page Page) ([]Provider, error) {
	defer s.done("ListProviders", time.Now())
	return s.store.ListProviders(ctx, page)
}

func (s *timedStore) DeleteProvider(ctx context.Context, id string, deletedAt time.Time) error {
	defer s.done("DeleteProvider", time.Now())
	return s.store.DeleteProvider(ctx, id, deletedAt)
}

func (s *timedStore) ClaimProviders(ctx context.Context, credentials []ProviderCredentials, claimedAt time.Time) error {
	defer s.done("ClaimProviders", time.Now())
	return s.store.ClaimProviders(ctx, credentials, claimedAt)
}

func (s *timedStore) RenewProviders(ctx context.Context, credentials []ProviderCredentials, renewedAt time.Time) error {
	defer s.done("RenewProviders", time.Now())
	return s.store.RenewProviders(ctx, credentials, renewedAt)
}

func (s *timedStore) ReplaceProviderPrivateKey(ctx context.Context, providerID string, current, replacement []byte) error {
	defer s.done("ReplaceProviderPrivateKey", time.Now())
	return s.store.ReplaceProviderPrivateKey(ctx, providerID, current, replacement)
}

// AuthorizationCodes (codes.go).

func (s *timedStore) CreateAuthorizationCode(ctx context.Context, code AuthorizationCode) error {
	defer s.done("CreateAuthorizationCode", time.Now())
	return s.store.CreateAuthorizationCode(ctx, code)
}

func (s *timedStore) RedeemAuthorizationCode(ctx context.Context, hash []byte, usedAt time.Time, familyID string, check func(AuthorizationCode) error) (AuthorizationCode, error) {
	defer s.done("RedeemAuthorizationCode", time.Now())
	return s.store.RedeemAuthorizationCode(ctx, hash, usedAt, familyID, check)
}

func (s *timedStore) DeleteExpiredAuthorizationCodes(ctx context.Context, cutoff time.Time) (int, error) {
	defer s.done("DeleteExpiredAuthorizationCodes", time.Now())
	return s.store.DeleteExpiredAuthorizationCodes(ctx, cutoff)
}

// DeviceCodes (devicecodes.go).

func (s *timedStore) CreateDeviceCode(ctx context.Context, code DeviceCode) error {
	defer s.done("CreateDeviceCode", time.Now())
	return s.store.CreateDeviceCode(ctx, code)
}

func (s *timedStore) GetDeviceCodeByUserCode(ctx context.Context, userCodeHash []byte) (DeviceCode, error) {
	defer s.done("GetDeviceCodeByUserCode", time.Now())
	return s.store.GetDeviceCodeByUserCode(ctx, userCodeHash)
}

func (s *timedStore) DecideDeviceCode(ctx context.Context, userCodeHash []byte, decision DeviceDecision) error {
	defer s.done("DecideDeviceCode", time.Now())
	return s.store.DecideDeviceCode(ctx, userCodeHash, decision)
}

func (s *timedStore) PollDeviceCode(ctx context.Context, deviceCodeHash []byte, clientID string, now time.Time, slowDownStep time.Duration) (DeviceCode, DevicePollOutcome, error) {
	defer s.done("PollDeviceCode", time.Now())
	return s.store.PollDeviceCode(ctx, deviceCodeHash, clientID, now, slowDownStep)
}

func (s *timedStore) DeleteExpiredDeviceCodes(ctx context.Context, cutoff time.Time) (int, error) {
	defer s.done("DeleteExpiredDeviceCodes", time.Now())
	return s.store.DeleteExpiredDeviceCodes(ctx, cutoff)
}

// Sessions (sessions.go).

func (s *timedStore) CreateSession(ctx context.Context, session Session, keep int) error {
	defer s.done("CreateSession", time.Now())
	return s.store.CreateSession(ctx, session, keep)
}

func (s *timedStore) GetSession(ctx context.Context, id string) (Session, error) {
	defer s.done("GetSession", time.Now())
	return s.store.GetSession(ctx, id)
}

func (s *timedStore) UpdateSession(ctx context.Context, id string, update func(*Session) error) (Session, error) {
	defer s.done("UpdateSession", time.Now())
	return s.store.UpdateSession(ctx, id, update)
}

func (s *timedStore) ListSessions(ctx context.Context, subject string, now time.Time, page Page) ([]Session, error) {
	defer s.done("ListSessions", time.Now())
	return s.store.ListSessions(ctx, subject, now, page)
}

func (s *timedStore) EndSessions(ctx context.Context, subject string, endedAt time.Time) (int, error) {
	defer s.done("EndSessions", time.Now())
	return s.store.EndSessions(ctx, subject, endedAt)
}

func (s *timedStore) DeleteExpiredSessions(ctx context.Context, cutoff time.Time) (int, error) {
	defer s.done("DeleteExpiredSessions", time.Now())
	return s.store.DeleteExpiredSessions(ctx, cutoff)
}

// Throttle (throttle.go).

func (s *timedStore) GetLoginFailures(ctx context.Context, key string) (LoginFailures, error) {
	defer s.done("GetLoginFailures", time.Now())
	return s.store.GetLoginFailures(ctx, key)
}

func (s *timedStore) ReserveLoginAttempt(ctx context.Context, key string, at time.Time, forgetAfter time.Duration, allow func(LoginFailures) bool) (LoginFailures, bool, error) {
	defer s.done("ReserveLoginAttempt", time.Now())
	return s.store.ReserveLoginAttempt(ctx, key, at, forgetAfter, allow)
}

func (s *timedStore) ReleaseLoginAttempts(ctx context.Context, key string, n int) error {
	defer s.done("ReleaseLoginAttempts", time.Now())
	return s.store.ReleaseLoginAttempts(ctx, key, n)
}

func (s *timedStore) ResetLoginFailures(ctx context.Context, key string) error {
	defer s.done("ResetLoginFailures", time.Now())
	return s.store.ResetLoginFailures(ctx, key)
}

func (s *timedStore) DeleteStaleLoginFailures(ctx context.Context, cutoff time.Time) (int, error) {
	defer s.done("DeleteStaleLoginFailures", time.Now())
	return s.store.DeleteStaleLoginFailures(ctx, cutoff)
}

// Maintenance (storage.go).

func (s *timedStore) WithCleanupLock(ctx context.Context, fn func() error) (bool, error) {
	defer s.done("WithCleanupLock", time.Now())
	return s.store.WithCleanupLock(ctx, fn)
}

func (s *timedStore) EraseReplacedValues(ctx context.Context) error {
	defer s.done("EraseReplacedValues", time.Now())
	return s.store.EraseReplacedValues(ctx)
}

func (s *timedStore) Close() error { return s.store.Close() }

// FederationRules and AssertionReplays (federation.go).

func (s *timedStore) CreateFederationRule(ctx context.Context, rule FederationRule) error {
	defer s.done("CreateFederationRule", time.Now())
	return s.store.CreateFederationRule(ctx, rule)
}

func (s *timedStore) GetFederationRule(ctx context.Context, name string) (FederationRule, error) {
	defer s.done("GetFederationRule", time.Now())
	return s.store.GetFederationRule(ctx, name)
}

func (s *timedStore) ListFederationRules(ctx context.Context, page Page) ([]FederationRule, error) {
	defer s.done("ListFederationRules", time.Now())
	return s.store.ListFederationRules(ctx, page)
}

func (s *timedStore) DeleteFederationRule(ctx context.Context, name string) error {
	defer s.done("DeleteFederationRule", time.Now())
	return s.store.DeleteFederationRule(ctx, name)
}

func (s *timedStore) RecordAssertion(ctx context.Context, issuer, jti string, expiresAt time.Time) error {
	defer s.done("RecordAssertion", time.Now())
	return s.store.RecordAssertion(ctx, issuer, jti, expiresAt)
}

func (s *timedStore) DeleteExpiredAssertions(ctx context.Context, cutoff time.Time) (int, error) {
	defer s.done("DeleteExpiredAssertions", time.Now())
	return s.store.DeleteExpiredAssertions(ctx, cutoff)
}

// SecurityEventStreams (securityevents.go).

func (s *timedStore) CreateSecurityEventStream(ctx context.Context, stream SecurityEventStream) error {
	defer s.done("CreateSecurityEventStream", time.Now())
	return s.store.CreateSecurityEventStream(ctx, stream)
}

func (s *timedStore) GetSecurityEventStream(ctx context.Context, id string) (SecurityEventStream, error) {
	defer s.done("GetSecurityEventStream", time.Now())
	return s.store.GetSecurityEventStream(ctx, id)
}

func (s *timedStore) ListSecurityEventStreams(ctx context.Context, page Page) ([]SecurityEventStream, error) {
	defer s.done("ListSecurityEventStreams", time.Now())
	return s.store.ListSecurityEventStreams(ctx, page)
}

func (s *timedStore) DeleteSecurityEventStream(ctx context.Context, id string) error {
	defer s.done("DeleteSecurityEventStream", time.Now())
	return s.store.DeleteSecurityEventStream(ctx, id)
}

func (s *timedStore) SetSecurityEventStreamStatus(ctx context.Context, id, status string, updatedAt time.Time) error {
	defer s.done("SetSecurityEventStreamStatus", time.Now())
	return s.store.SetSecurityEventStreamStatus(ctx, id, status, updatedAt)
}

func (s *timedStore) AdvanceSecurityEventStream(ctx context.Context, id string, from, to RevocationCursor, lastError string, at time.Time) error {
	defer s.done("AdvanceSecurityEventStream", time.Now())
	return s.store.AdvanceSecurityEventStream(ctx, id, from, to, lastError, at)
}

func (s *timedStore) LeaseSecurityEventStream(ctx context.Context, id, holder string, now, until time.Time) (bool, error) {
	defer s.done("LeaseSecurityEventStream", time.Now())
	return s.store.LeaseSecurityEventStream(ctx, id, holder, now, until)
}
