package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/chit-auth/chit/internal/federation/federationtest"
)

// chitd federation create/get/list/delete on a local store, with the
// issuer's keys from a JWKS file (the line docs/federation.md and the
// bench give), and a refused unpinned rule saying why.
func TestFederationCommands(t *testing.T) {
	dir := t.TempDir()
	if _, err := run(t, "", "service", "create", "deployer", "--scope", "deploy", "--data-dir", dir); err != nil {
		t.Fatal(err)
	}
	jwks := filepath.Join(t.TempDir(), "cluster-jwks.json")
	issuer := federationtest.NewIssuer(t, federationtest.KubernetesIssuer)
	if err := os.WriteFile(jwks, []byte(issuer.PublicJWKS(t)), 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := run(t, "", "federation", "create", "k8s-deployer", "--issuer", federationtest.KubernetesIssuer, "--audience", "https://chit.example",
		"--service", "deployer", "--claim", "sub=system:serviceaccount:prod:deployer", "--jwks-file", jwks, "--data-dir", dir)
	if err != nil || !strings.Contains(out, "k8s-deployer") || !strings.Contains(out, "inline") {
		t.Fatalf("federation create: %q, %v", out, err)
	}
	out, err = run(t, "", "federation", "create", "gha-any", "--issuer", federationtest.GitHubIssuer, "--audience", "https://chit.example",
		"--service", "deployer", "--claim", "ref=refs/heads/main", "--data-dir", dir)
	if err == nil || !strings.Contains(err.Error(), "immutable numeric id") {
		t.Fatalf("an unpinned GitHub rule: %q, %v", out, err)
	}
	if _, err := run(t, "", "federation", "create", "x", "--issuer", federationtest.KubernetesIssuer, "--audience", "a",
		"--service", "deployer", "--claim", "sub", "--data-dir", dir); err == nil || !strings.Contains(err.Error(), "KEY=VALUE") {
		t.Fatalf("a --claim without =: %v", err)
	}
	out, err = run(t, "", "federation", "list", "--data-dir", dir)
	if err != nil || !strings.Contains(out, "sub=system:serviceaccount:prod:deployer") || !strings.Contains(out, "1h0m0s") {
		t.Fatalf("federation list: %q, %v", out, err)
	}
	out, err = run(t, "", "federation", "get", "k8s-deployer", "-o", "json", "--data-dir", dir)
	if err != nil || !strings.Contains(out, `"service_account": "deployer"`) {
		t.Fatalf("federation get: %q, %v", out, err)
	}
	if _, err := run(t, "", "federation", "delete", "k8s-deployer", "--data-dir", dir); err != nil {
		t.Fatal(err)
	}
	if _, err := run(t, "", "federation", "get", "k8s-deployer", "--data-dir", dir); err == nil || !strings.Contains(err.Error(), "does not exist") {
		t.Fatalf("after delete: %v", err)
	}
}
