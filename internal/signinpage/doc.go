// Package signinpage serves Chit's hosted sign-in page (GET and POST
// /oauth2/authorize): an HTML form rendered with html/template from embedded
// assets, protected against CSRF with a double-submit cookie, that works
// without JavaScript. It is a thin HTTP transport over pkg/authorize.
package signinpage
