package admincli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"

	adminv1 "github.com/chit-auth/chit/gen/chit/admin/v1"
	"github.com/chit-auth/chit/internal/envflag"
)

// maxJWKSFile bounds a --jwks-file: a key set is a few KiB.
const maxJWKSFile = 256 << 10

func (t *tree) federationCommand() *cobra.Command {
	cmd := &cobra.Command{Use: "federation", Short: "Trust external issuers' workload tokens for service accounts (workload identity federation)"}
	var (
		issuer, audience, service, jwksFile, jwksURI string
		claims                                       []string
		singleUse                                    bool
		lifetime                                     time.Duration
	)
	create := &cobra.Command{
		Use:   "create NAME --issuer URL --audience AUD --service SERVICE [--claim KEY=VALUE]... [--jwks-file FILE | --jwks-uri URL] [--single-use]",
		Short: "Trust an issuer's tokens, whose claims match, as a service account",
		Long: `Trust the JWTs an external issuer gives workloads (a Kubernetes service-account
token, a GitHub Actions or GitLab CI OIDC token, a SPIFFE JWT-SVID) as the
service account SERVICE: a token from --issuer whose aud contains --audience
and whose claims equal every --claim is exchanged on /oauth2/token
(grant_type=urn:ietf:params:oauth:grant-type:jwt-bearer) for SERVICE's access
token, with SERVICE's scopes and audiences, no longer-lived than the token.

The claims must pin who the workload is: sub (for GitHub Actions and
GitLab.com, whose tokens any repository or project can get, an owner's numeric
id: repository_id or repository_owner_id, project_id or namespace_id). A
value with '*' is a glob matching within one path segment (ref=refs/heads/*);
the pinning claim takes none.

Keys come from the issuer's discovery document (its jwks_uri must be on the
issuer's host), from --jwks-uri, or from --jwks-file (a JWKS read now and
stored in the rule: Kubernetes' is at kubectl get --raw /openid/v1/jwks).`,
		Example: t.example("federation create k8s-deployer --issuer https://kubernetes.default.svc.cluster.local --audience https://chit.example \\\n"+
			"      --service deployer --claim sub=system:serviceaccount:prod:deployer --jwks-file cluster-jwks.json\n") +
			t.example("federation create gha-deploy --issuer https://token.actions.githubusercontent.com --audience https://chit.example \\\n"+
				"      --service deployer --claim repository_id=123456789 --claim ref=refs/heads/main"),
		Args: cobra.ExactArgs(1),
		RunE: run(t, func(ctx context.Context, admin adminv1.AdminServiceClient, args []string) (*adminv1.FederationRule, error) {
			rule := &adminv1.FederationRule{Name: args[0], Issuer: issuer, Audience: audience, ServiceAccount: service,
				JwksUri: jwksURI, SingleUse: singleUse}
			var err error
			if rule.Claims, err = claimFlags(claims); err != nil {
				return nil, err
			}
			if jwksFile != "" {
				if rule.Jwks, err = readJWKSFile(jwksFile); err != nil {
					return nil, err
				}
			}
			if lifetime != 0 {
				rule.MaxAssertionLifetime = durationpb.New(lifetime)
			}
			resp, err := admin.CreateFederationRule(ctx, &adminv1.CreateFederationRuleRequest{Rule: rule})
			return resp.GetRule(), err
		}, func(_ *cobra.Command, w io.Writer, _ []string, rule *adminv1.FederationRule) error {
			return printFederationRules(w, []*adminv1.FederationRule{rule})
		}),
	}
	flags := create.Flags()
	flags.StringVar(&issuer, "issuer", "", "the tokens' iss, exactly (https)")
	flags.StringVar(&audience, "audience", "", "a value the tokens' aud must contain")
	flags.StringVar(&service, "service", "", "the service account (client id) whose access tokens are issued")
	flags.StringArrayVar(&claims, "claim", nil, "KEY=VALUE a claim must equal, or match as a glob with '*' (repeat for more)")
	flags.StringVar(&jwksFile, "jwks-file", "", "a file holding the issuer's JWKS, stored in the rule (instead of fetching it)")
	flags.StringVar(&jwksURI, "jwks-uri", "", "fetch the issuer's keys from this https URL instead of its discovery document's")
	flags.BoolVar(&singleUse, "single-use", false, "exchange each token once: it must carry jti, remembered until it expires")
	flags.DurationVar(&lifetime, "max-assertion-lifetime", 0, "the longest exp - iat a token may have (default 1h)")
	envflag.NoEnv(flags, "issuer", "audience", "service", "claim", "jwks-file", "jwks-uri", "single-use", "max-assertion-lifetime")
	for _, name := range []string{"issuer", "audience", "service"} {
		_ = create.MarkFlagRequired(name)
	}

	get := getCommand(t, "get NAME", "Show a federation rule", func(ctx context.Context, admin adminv1.AdminServiceClient, name string) (*adminv1.FederationRule, error) {
		resp, err := admin.GetFederationRule(ctx, &adminv1.GetFederationRuleRequest{Name: name})
		return resp.GetRule(), err
	}, printFederationRules)
	list := listCommand(t, "list", "List federation rules by name", cobra.NoArgs,
		func(ctx context.Context, admin adminv1.AdminServiceClient, _ []string, size int32, token string) ([]*adminv1.FederationRule, string, error) {
			page, err := admin.ListFederationRules(ctx, &adminv1.ListFederationRulesRequest{PageSize: size, PageToken: token})
			return page.GetRules(), page.GetNextPageToken(), err
		}, func(all []*adminv1.FederationRule) *adminv1.ListFederationRulesResponse {
			return &adminv1.ListFederationRulesResponse{Rules: all}
		}, printFederationRules)
	remove := deleteCommand(t, "federation rule", "delete NAME", "Delete a federation rule; its issuer's tokens stop being exchanged under it",
		func(ctx context.Context, admin adminv1.AdminServiceClient, name string) (proto.Message, error) {
			return admin.DeleteFederationRule(ctx, &adminv1.DeleteFederationRuleRequest{Name: name})
		})
	cmd.AddCommand(create, get, list, remove)
	return cmd
}

// claimFlags reads repeated --claim KEY=VALUE; a key given twice is
// refused rather than one of them silently kept.
func claimFlags(flags []string) (map[string]string, error) {
	claims := map[string]string{}
	for _, flag := range flags {
		key, value, ok := strings.Cut(flag, "=")
		if !ok || key == "" {
			return nil, fmt.Errorf("--claim %q: write it KEY=VALUE", flag)
		}
		if _, twice := claims[key]; twice {
			return nil, fmt.Errorf("--claim %s is given twice", key)
		}
		claims[key] = value
	}
	return claims, nil
}

func readJWKSFile(path string) (string, error) {
	file, err := os.Open(path)
	if err != nil {
		return "", fmt.Errorf("--jwks-file: %w", err)
	}
	defer file.Close()
	body, err := io.ReadAll(io.LimitReader(file, maxJWKSFile+1))
	if err != nil {
		return "", fmt.Errorf("--jwks-file: %w", err)
	}
	if len(body) > maxJWKSFile {
		return "", errors.New("--jwks-file: larger than a key set can be (256 KiB)")
	}
	return string(body), nil
}

func printFederationRules(out io.Writer, all []*adminv1.FederationRule) error {
	w := table(out, "NAME\tISSUER\tAUDIENCE\tSERVICE\tCLAIMS\tKEYS\tSINGLE_USE\tMAX_LIFETIME\tCREATED")
	for _, r := range all {
		var claims []string
		for _, key := range slices.Sorted(maps.Keys(r.GetClaims())) {
			claims = append(claims, key+"="+r.GetClaims()[key])
		}
		keys := "discovery"
		switch {
		case r.GetJwks() != "":
			keys = "inline"
		case r.GetJwksUri() != "":
			keys = r.GetJwksUri()
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\t%t\t%s\t%s\n", r.GetName(), r.GetIssuer(), r.GetAudience(), r.GetServiceAccount(),
			OrNone(claims), keys, r.GetSingleUse(), r.GetMaxAssertionLifetime().AsDuration(), Stamp(r.GetCreateTime()))
	}
	return w.Flush()
}
