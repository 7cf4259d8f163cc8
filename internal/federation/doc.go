// Package federation is workload identity federation: an admin trusts an
// external issuer (a Kubernetes cluster, GitHub Actions, GitLab CI, a
// SPIFFE trust domain) for one service account, and a workload exchanges
// the JWT its platform gave it (RFC 7523's jwt-bearer assertion) for that
// service account's access token, issued through tokens.IssueForClient with
// the account's grants. It owns the rules' checks at creation, the
// assertion's checks at exchange, and the issuers' keys (inline, or fetched
// from the issuer's discovery document over https and cached).
//
// It is core: it must not import gRPC or serve HTTP; its only net/http use
// is the client that fetches issuers' keys.
package federation
