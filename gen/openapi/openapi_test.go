package openapi

import (
	"encoding/json"
	"regexp"
	"strings"
	"testing"
)

// The served OpenAPI document names the product and its version, and is
// whole: every operation answers, and every reference has its definition.
func TestOpenAPIDocument(t *testing.T) {
	var doc struct {
		Swagger string `json:"swagger"`
		Info    struct {
			Title, Description, Version string
		} `json:"info"`
		Paths       map[string]map[string]json.RawMessage `json:"paths"`
		Definitions map[string]json.RawMessage            `json:"definitions"`
	}
	if err := json.Unmarshal(Spec, &doc); err != nil {
		t.Fatalf("the OpenAPI document is not JSON: %v", err)
	}
	if doc.Swagger != "2.0" || doc.Info.Title != "Chit" || doc.Info.Description == "" ||
		doc.Info.Version == "" || strings.Contains(doc.Info.Version, "not set") {
		t.Fatalf("info %+v (swagger %q): want Chit, a description and a version", doc.Info, doc.Swagger)
	}
	for _, path := range []string{"/v1/auth/token", "/v1/auth/check", "/auth/providers/refresh"} {
		if _, ok := doc.Paths[path]; !ok {
			t.Errorf("path %s is missing", path)
		}
	}
	for path, operations := range doc.Paths {
		for method, raw := range operations {
			var operation struct {
				OperationID string                     `json:"operationId"`
				Responses   map[string]json.RawMessage `json:"responses"`
			}
			if err := json.Unmarshal(raw, &operation); err != nil || operation.OperationID == "" || operation.Responses["200"] == nil {
				t.Errorf("%s %s: an operation needs an operationId and a 200 response (%v)", method, path, err)
			}
		}
	}
	for _, ref := range regexp.MustCompile(`"\$ref":\s*"#/definitions/([^"]+)"`).FindAllSubmatch(Spec, -1) {
		if _, ok := doc.Definitions[string(ref[1])]; !ok {
			t.Errorf("reference to #/definitions/%s has no definition", ref[1])
		}
	}
}
