package servertest

import (
	"html"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"strings"
	"testing"
)

// Browser plays a person's browser on the sign-in page: it keeps cookies,
// reads the form and submits it.
type Browser struct {
	Client *http.Client
	// base replaces the scheme and host of authorize URLs: the test server's
	// issuer is not the address it listens on.
	base *url.URL
}

// NewBrowser returns a browser that reaches the page on e's HTTP port.
func (e *Env) NewBrowser(t testing.TB) *Browser {
	t.Helper()
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	base, _ := url.Parse(e.HTTPBase())
	return &Browser{Client: &http.Client{Jar: jar}, base: base}
}

// Page is a fetched sign-in page.
type Page struct {
	Status int
	Body   string
	Header http.Header
	// Fields are the form's hidden inputs (the CSRF token and the request).
	Fields url.Values
	// URL is where the page was served from.
	URL *url.URL
}

var hiddenInput = regexp.MustCompile(`<input type="hidden" name="([^"]+)" value="([^"]*)">`)

// Open fetches an authorize URL.
func (b *Browser) Open(t testing.TB, authorizeURL string) Page {
	t.Helper()
	u, err := url.Parse(authorizeURL)
	if err != nil {
		t.Fatal(err)
	}
	u.Scheme, u.Host = b.base.Scheme, b.base.Host
	resp, err := b.Client.Get(u.String())
	if err != nil {
		t.Fatal(err)
	}
	return readPage(t, resp)
}

// Submit posts the page's form with extra fields (username, password,
// action) and returns the final response after redirects.
func (b *Browser) Submit(t testing.TB, page Page, extra url.Values) *http.Response {
	t.Helper()
	form := url.Values{}
	for name, values := range page.Fields {
		form[name] = values
	}
	for name, values := range extra {
		form[name] = values
	}
	target := *page.URL
	target.RawQuery = ""
	resp, err := b.Client.PostForm(target.String(), form)
	if err != nil {
		t.Fatal(err)
	}
	return resp
}

// ReadPage reads a response as a page.
func ReadPage(t testing.TB, resp *http.Response) Page { return readPage(t, resp) }

func readPage(t testing.TB, resp *http.Response) Page {
	t.Helper()
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	page := Page{Status: resp.StatusCode, Body: string(raw), Header: resp.Header, Fields: url.Values{}, URL: resp.Request.URL}
	for _, match := range hiddenInput.FindAllStringSubmatch(page.Body, -1) {
		page.Fields.Set(html.UnescapeString(match[1]), html.UnescapeString(match[2]))
	}
	return page
}

// Contains reports whether the page's text contains s.
func (p Page) Contains(s string) bool { return strings.Contains(html.UnescapeString(p.Body), s) }
