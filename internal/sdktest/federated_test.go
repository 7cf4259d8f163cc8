package sdktest_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"google.golang.org/grpc/codes"

	adminv1 "github.com/chit-auth/chit/gen/chit/admin/v1"
	"github.com/chit-auth/chit/internal/federation/federationtest"
	"github.com/chit-auth/chit/internal/server/servertest"
	"github.com/chit-auth/chit/pkg/client"
)

// The SDK's FederatedTokenFile exchanges a Kubernetes projected token file
// on a real server for the mapped service account's token.
func TestFederatedTokenFileAgainstTheServer(t *testing.T) {
	t.Parallel()
	k8s := federationtest.NewIssuer(t, federationtest.KubernetesIssuer)
	e := servertest.Start(t)
	tr := servertest.Transports(e)["gRPC"]
	admin := servertest.NewAdminCallers(t, e, tr).Admin
	code := tr.Invoke(t, adminv1.AdminService_CreateFederationRule_FullMethodName, admin, &adminv1.CreateFederationRuleRequest{Rule: &adminv1.FederationRule{
		Name: "k8s", Issuer: federationtest.KubernetesIssuer, Audience: "https://chit.example", ServiceAccount: servertest.ServiceName,
		Claims: map[string]string{"sub": "system:serviceaccount:prod:billing"}, Jwks: k8s.PublicJWKS(t)}}, &adminv1.CreateFederationRuleResponse{})
	servertest.WantCode(t, "create rule", code, codes.OK)
	path := filepath.Join(t.TempDir(), "token")
	claims := federationtest.Kubernetes(federationtest.KubernetesIssuer, "prod", "billing", "https://chit.example", e.Clock.Now())
	if err := os.WriteFile(path, []byte(k8s.Sign(t, "", claims)), 0o600); err != nil {
		t.Fatal(err)
	}
	token, err := client.FederatedTokenFile(context.Background(), e.HTTPBase(), path, "inventory:write").Token()
	if err != nil {
		t.Fatal(err)
	}
	checked, code := tr.Check(t, token.AccessToken)
	servertest.WantCode(t, "check", code, codes.OK)
	if checked.GetSubject() != "service:"+servertest.ServiceName || len(checked.GetScopes()) != 1 || checked.GetScopes()[0] != "inventory:write" {
		t.Fatalf("checked %+v", checked)
	}
}
