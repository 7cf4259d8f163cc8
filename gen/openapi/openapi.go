// Package openapi holds the OpenAPI v2 document that buf generates beside it
// from proto/, embedded so that the server can serve it.
package openapi

import _ "embed"

// Spec is the OpenAPI v2 document of Chit's REST API.
//
//go:embed chit.swagger.json
var Spec []byte
