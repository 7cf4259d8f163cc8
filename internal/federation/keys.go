package federation

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sync"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwk"
)

// How issuers' keys are fetched. Every limit is a refusal of a fetch, never
// of the server: an issuer whose keys cannot be had refuses its own
// assertions, and everything else keeps serving.
const (
	// FetchTimeout bounds one request of a discovery document or a JWKS.
	FetchTimeout = 5 * time.Second
	// MaxDocumentBytes bounds a discovery document or a JWKS: real ones are
	// a few KiB.
	MaxDocumentBytes = 256 << 10
	// RefetchInterval is the least time between two fetches of one issuer's
	// keys for an unknown kid: an issuer that rotated is followed within
	// it, and a stream of made-up kids costs one fetch per interval.
	RefetchInterval = 10 * time.Second
	// KeysMaxAge is how long fetched keys are used before they are fetched
	// again (a key the issuer withdrew stops working within it). When that
	// fetch fails, the keys held go on being used.
	KeysMaxAge = 15 * time.Minute
	// MaxFetchBackoff is the longest wait after repeated failed fetches.
	MaxFetchBackoff = 5 * time.Minute
	// maxKeys bounds the keys of one set.
	maxKeys = 32
)

// errKeysUnavailable says that an issuer's keys could not be had now.
type errKeysUnavailable struct{ cause error }

func (e *errKeysUnavailable) Error() string { return e.cause.Error() }
func (e *errKeysUnavailable) Unwrap() error { return e.cause }

// keySource gives the keys an issuer signs with.
type keySource interface {
	// keys returns the set that should hold kid; it may not.
	keys(ctx context.Context, kid string) (jwk.Set, error)
}

// inlineKeys are a rule's JWKS given by the admin.
type inlineKeys struct{ set jwk.Set }

func (k inlineKeys) keys(context.Context, string) (jwk.Set, error) { return k.set, nil }

// remoteKeys are an issuer's keys fetched over https: from jwksURI, or
// from the jwks_uri of the issuer's discovery document (OpenID Connect
// Discovery §4), which must be on the issuer's own host. Fetches of one
// source are serialized; other issuers' are independent.
type remoteKeys struct {
	issuer  string
	jwksURI string // "" for the discovery document's
	client  *http.Client
	timeout time.Duration
	now     func() time.Time

	mu        sync.Mutex
	set       jwk.Set
	fetchedAt time.Time
	// attemptedAt is the last fetch tried; failures counts those failed in
	// a row, lastErr is the last one's.
	attemptedAt time.Time
	failures    int
	lastErr     error
}

func (r *remoteKeys) keys(ctx context.Context, kid string) (jwk.Set, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	now := r.now()
	if r.set != nil {
		_, known := r.set.LookupKeyID(kid)
		fresh := now.Sub(r.fetchedAt) < KeysMaxAge
		if (known || kid == "") && fresh {
			return r.set, nil
		}
		if now.Sub(r.attemptedAt) < r.wait() {
			return r.set, nil
		}
		if err := r.fetch(ctx, now); err != nil {
			// The keys held still verify what they verified; an unknown kid
			// stays unknown until the next fetch.
			return r.set, nil
		}
		return r.set, nil
	}
	if !r.attemptedAt.IsZero() && now.Sub(r.attemptedAt) < r.wait() {
		return nil, &errKeysUnavailable{r.lastErr}
	}
	if err := r.fetch(ctx, now); err != nil {
		return nil, &errKeysUnavailable{err}
	}
	return r.set, nil
}

// wait is the time between fetches: RefetchInterval, doubled with each
// failure in a row up to MaxFetchBackoff.
func (r *remoteKeys) wait() time.Duration {
	wait := RefetchInterval
	for i := 1; i < r.failures && wait < MaxFetchBackoff; i++ {
		wait *= 2
	}
	return min(wait, MaxFetchBackoff)
}

func (r *remoteKeys) fetch(ctx context.Context, now time.Time) error {
	r.attemptedAt = now
	set, err := r.fetchSet(ctx)
	if err != nil {
		r.failures++
		r.lastErr = err
		return err
	}
	r.set, r.fetchedAt, r.failures, r.lastErr = set, now, 0, nil
	return nil
}

func (r *remoteKeys) fetchSet(ctx context.Context) (jwk.Set, error) {
	jwksURI := r.jwksURI
	if jwksURI == "" {
		var err error
		if jwksURI, err = r.discover(ctx); err != nil {
			return nil, err
		}
	}
	body, err := fetchDocument(ctx, r.client, r.timeout, jwksURI)
	if err != nil {
		return nil, fmt.Errorf("JWKS: %w", err)
	}
	set, err := jwk.Parse(body)
	if err != nil {
		return nil, errors.New("JWKS: not a JSON Web Key Set")
	}
	if err := checkKeySet(set); err != nil {
		return nil, fmt.Errorf("JWKS: %w", err)
	}
	return set, nil
}

// discover reads the issuer's discovery document for its jwks_uri, which
// must be https on the issuer's own host: a document that names keys
// elsewhere is refused, so whoever controls the document's host alone
// cannot point Chit at keys they hold somewhere else.
func (r *remoteKeys) discover(ctx context.Context) (string, error) {
	body, err := fetchDocument(ctx, r.client, r.timeout, r.issuer+"/.well-known/openid-configuration")
	if err != nil {
		return "", fmt.Errorf("discovery document: %w", err)
	}
	var document struct {
		Issuer  string `json:"issuer"`
		JWKSURI string `json:"jwks_uri"`
	}
	if err := json.Unmarshal(body, &document); err != nil {
		return "", errors.New("discovery document: not JSON")
	}
	// OpenID Connect Discovery §4.3.
	if document.Issuer != r.issuer {
		return "", errors.New("discovery document: its issuer is not the rule's")
	}
	issuer, _ := url.Parse(r.issuer)
	jwks, err := url.Parse(document.JWKSURI)
	if err != nil || jwks.Scheme != "https" || jwks.Host != issuer.Host {
		return "", errors.New("discovery document: jwks_uri is not https on the issuer's host (name the keys' URL in the rule's jwks_uri to trust another)")
	}
	return document.JWKSURI, nil
}

var errRedirect = errors.New("redirects are not followed")

// fetchDocument GETs target over https within timeout, with no redirect
// and at most MaxDocumentBytes.
func fetchDocument(ctx context.Context, client *http.Client, timeout time.Duration, target string) ([]byte, error) {
	if u, err := url.Parse(target); err != nil || u.Scheme != "https" {
		return nil, errors.New("not an https URL")
	}
	// The caller's deadline does not bound it: a fetch serves every
	// request waiting for the issuer's keys, not only the first one's.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), timeout)
	defer cancel()
	request, err := http.NewRequestWithContext(ctx, http.MethodGet, target, nil)
	if err != nil {
		return nil, err
	}
	request.Header.Set("Accept", "application/json")
	response, err := client.Do(request)
	if errors.Is(err, errRedirect) {
		return nil, errRedirect
	}
	if err != nil {
		return nil, errors.New("the request failed (unreachable, timed out or TLS refused)")
	}
	defer response.Body.Close()
	if response.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("answered HTTP %d", response.StatusCode)
	}
	body, err := io.ReadAll(io.LimitReader(response.Body, MaxDocumentBytes+1))
	if err != nil {
		return nil, errors.New("the answer could not be read")
	}
	if len(body) > MaxDocumentBytes {
		return nil, fmt.Errorf("larger than %d KiB", MaxDocumentBytes>>10)
	}
	return body, nil
}

// noRedirects is client, or a default one, refusing redirects: a key URL
// is trusted as named, not wherever it sends.
func noRedirects(client *http.Client) *http.Client {
	if client == nil {
		client = &http.Client{Timeout: FetchTimeout}
	}
	copied := *client
	copied.CheckRedirect = func(*http.Request, []*http.Request) error { return errRedirect }
	return &copied
}

// checkKeySet accepts a set of 1 to maxKeys public keys.
func checkKeySet(set jwk.Set) error {
	if set.Len() == 0 || set.Len() > maxKeys {
		return fmt.Errorf("a key set holds 1 to %d keys", maxKeys)
	}
	for i := range set.Len() {
		key, _ := set.Key(i)
		if _, private := key.(interface{ D() []byte }); private {
			return errors.New("it holds a private key: give the public keys only")
		}
		switch key.KeyType().String() {
		case "RSA", "EC", "OKP":
		default:
			return fmt.Errorf("key type %s is not RSA, EC or OKP", key.KeyType())
		}
	}
	return nil
}
