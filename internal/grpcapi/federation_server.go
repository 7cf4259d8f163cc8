package grpcapi

import (
	"context"
	"maps"

	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	adminv1 "github.com/chit-auth/chit/gen/chit/admin/v1"
	"github.com/chit-auth/chit/internal/chiterr"
	"github.com/chit-auth/chit/internal/paging"
	"github.com/chit-auth/chit/internal/storage"
)

const federationRulesList = "federation-rules"

var errNoFederation = chiterr.New(chiterr.Unimplemented, "workload identity federation is not enabled on this server")

func (s *AdminServer) CreateFederationRule(ctx context.Context, req *adminv1.CreateFederationRuleRequest) (*adminv1.CreateFederationRuleResponse, error) {
	if s.federation == nil {
		return nil, errNoFederation
	}
	message := req.GetRule()
	if message == nil {
		return nil, chiterr.New(chiterr.InvalidArgument, "rule is required")
	}
	rule := storage.FederationRule{Name: message.GetName(), Issuer: message.GetIssuer(), Audience: message.GetAudience(),
		ServiceAccount: message.GetServiceAccount(), Claims: maps.Clone(message.GetClaims()), JWKS: message.GetJwks(),
		JWKSURI: message.GetJwksUri(), SingleUse: message.GetSingleUse()}
	if lifetime := message.GetMaxAssertionLifetime(); lifetime != nil {
		if err := lifetime.CheckValid(); err != nil {
			return nil, chiterr.New(chiterr.InvalidArgument, "max_assertion_lifetime is not a valid duration")
		}
		rule.MaxAssertionLifetime = lifetime.AsDuration()
	}
	created, err := s.federation.CreateRule(ctx, rule)
	if err != nil {
		return nil, err
	}
	return &adminv1.CreateFederationRuleResponse{Rule: federationRuleMessage(created)}, nil
}

func (s *AdminServer) GetFederationRule(ctx context.Context, req *adminv1.GetFederationRuleRequest) (*adminv1.GetFederationRuleResponse, error) {
	if s.federation == nil {
		return nil, errNoFederation
	}
	rule, err := s.federation.GetRule(ctx, req.GetName())
	if err != nil {
		return nil, err
	}
	return &adminv1.GetFederationRuleResponse{Rule: federationRuleMessage(rule)}, nil
}

func (s *AdminServer) ListFederationRules(ctx context.Context, req *adminv1.ListFederationRulesRequest) (*adminv1.ListFederationRulesResponse, error) {
	if s.federation == nil {
		return nil, errNoFederation
	}
	rules, next, err := paging.List(ctx, s.pages, federationRulesList, paging.Request{Size: req.GetPageSize(), Token: req.GetPageToken()},
		func(page storage.Page) ([]storage.FederationRule, error) { return s.federation.ListRules(ctx, page) },
		func(rule storage.FederationRule) string { return rule.Name }, federationRuleMessage)
	if err != nil {
		return nil, err
	}
	return &adminv1.ListFederationRulesResponse{Rules: rules, NextPageToken: next}, nil
}

func (s *AdminServer) DeleteFederationRule(ctx context.Context, req *adminv1.DeleteFederationRuleRequest) (*adminv1.DeleteFederationRuleResponse, error) {
	if s.federation == nil {
		return nil, errNoFederation
	}
	if err := s.federation.DeleteRule(ctx, req.GetName()); err != nil {
		return nil, err
	}
	return &adminv1.DeleteFederationRuleResponse{}, nil
}

func federationRuleMessage(rule storage.FederationRule) *adminv1.FederationRule {
	return &adminv1.FederationRule{
		Name: rule.Name, Issuer: rule.Issuer, Audience: rule.Audience, ServiceAccount: rule.ServiceAccount,
		Claims: maps.Clone(rule.Claims), Jwks: rule.JWKS, JwksUri: rule.JWKSURI, SingleUse: rule.SingleUse,
		MaxAssertionLifetime: durationpb.New(rule.MaxAssertionLifetime), CreateTime: timestamppb.New(rule.CreatedAt),
	}
}
