// Package chit holds what belongs to the repository as a whole: the OpenAPI
// document that buf generates into gen/openapi, embedded so the server can
// serve it.
package chit

import _ "embed"

// OpenAPISpec is the OpenAPI v2 document of Chit's REST API.
//
//go:embed gen/openapi/chit.swagger.json
var OpenAPISpec []byte
