package web

import (
	"bytes"
	"image/png"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path"
	"regexp"
	"strings"
	"testing"
)

// serve runs one request through Handler.
func serve(t *testing.T, method, target string, hdr http.Header) *httptest.ResponseRecorder {
	t.Helper()
	req := httptest.NewRequest(method, target, nil)
	for k, v := range hdr {
		req.Header[k] = v
	}
	rec := httptest.NewRecorder()
	Handler().ServeHTTP(rec, req)
	return rec
}

func TestHandler_ServesTheAppUnderAnyIssuerPath(t *testing.T) {
	t.Parallel()
	tests := []struct {
		path, contentType, contains string
	}{
		{"/app/", "text/html; charset=utf-8", `<script type="module" src="app.js">`},
		{"/app/index.html", "text/html; charset=utf-8", `<script type="module" src="app.js">`},
		{"/app/app.js", "text/javascript; charset=utf-8", "DeviceAPI"},
		{"/app/lib/jcs.js", "text/javascript; charset=utf-8", "export function canonicalize"},
		{"/app/sw.js", "text/javascript; charset=utf-8", "countersign-shell"},
		{"/app/app.css", "text/css; charset=utf-8", ":root"},
		{"/app/manifest.webmanifest", "application/manifest+json", `"name": "Countersign"`},
		{"/app/icons/icon.svg", "image/svg+xml", "<svg"},
		{"/app/icons/icon-192.png", "image/png", "PNG"},
		{"/enroll", "text/html; charset=utf-8", `src="app/enroll.js"`},
		{"/tenant/app/", "text/html; charset=utf-8", `src="app.js"`},
		{"/tenant/enroll", "text/html; charset=utf-8", `src="app/enroll.js"`},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			t.Parallel()
			rec := serve(t, http.MethodGet, tt.path, nil)
			if rec.Code != http.StatusOK {
				t.Fatalf("GET %s = %d, want 200", tt.path, rec.Code)
			}
			if got := rec.Header().Get("Content-Type"); got != tt.contentType {
				t.Errorf("Content-Type = %q, want %q", got, tt.contentType)
			}
			if !strings.Contains(rec.Body.String(), tt.contains) {
				t.Errorf("body does not contain %q", tt.contains)
			}
		})
	}
}

func TestHandler_SecurityHeadersOnEveryResponse(t *testing.T) {
	t.Parallel()
	for _, p := range []string{"/app/", "/enroll", "/app/sw.js", "/app/nope.js"} {
		rec := serve(t, http.MethodGet, p, nil)
		h := rec.Header()
		csp := h.Get("Content-Security-Policy")
		for _, directive := range []string{
			"default-src 'self'", "script-src 'self'", "connect-src 'self'", "img-src 'self' data:",
			"frame-ancestors 'none'", "base-uri 'none'", "object-src 'none'", "require-trusted-types-for 'script'",
		} {
			if !strings.Contains(csp, directive) {
				t.Errorf("%s: CSP %q lacks %q", p, csp, directive)
			}
		}
		if strings.Contains(csp, "unsafe-") {
			t.Errorf("%s: CSP allows something unsafe: %q", p, csp)
		}
		for k, want := range map[string]string{
			"X-Frame-Options": "DENY", "X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer",
		} {
			if got := h.Get(k); got != want {
				t.Errorf("%s: %s = %q, want %q", p, k, got, want)
			}
		}
	}
}

func TestHandler_UnknownAndUnsafePathsAre404(t *testing.T) {
	t.Parallel()
	for _, p := range []string{
		"/app/missing.js", "/app/enroll.html", "/app/../web.go", "/app/lib/../../web.go", "/app//app.js",
		"/app/static/app.js", "/enroll/", "/app/lib/",
	} {
		if rec := serve(t, http.MethodGet, p, nil); rec.Code != http.StatusNotFound {
			t.Errorf("GET %s = %d, want 404", p, rec.Code)
		}
	}
}

func TestHandler_OnlyGetAndHead(t *testing.T) {
	t.Parallel()
	if rec := serve(t, http.MethodHead, "/app/app.js", nil); rec.Code != http.StatusOK {
		t.Errorf("HEAD = %d, want 200", rec.Code)
	}
	for _, m := range []string{http.MethodPost, http.MethodPut, http.MethodDelete} {
		rec := serve(t, m, "/app/", nil)
		if rec.Code != http.StatusMethodNotAllowed || rec.Header().Get("Allow") != "GET, HEAD" {
			t.Errorf("%s = %d (Allow %q), want 405 with Allow: GET, HEAD", m, rec.Code, rec.Header().Get("Allow"))
		}
	}
}

func TestHandler_RevalidatesWithETag(t *testing.T) {
	t.Parallel()
	first := serve(t, http.MethodGet, "/app/app.js", nil)
	etag := first.Header().Get("ETag")
	if etag == "" || first.Header().Get("Cache-Control") != "no-cache" {
		t.Fatalf("ETag %q, Cache-Control %q: want an ETag and no-cache", etag, first.Header().Get("Cache-Control"))
	}
	again := serve(t, http.MethodGet, "/app/app.js", http.Header{"If-None-Match": {etag}})
	if again.Code != http.StatusNotModified {
		t.Errorf("conditional GET = %d, want 304", again.Code)
	}
}

// appFiles lists the embedded files below static/, by name.
func appFiles(t *testing.T) map[string][]byte {
	t.Helper()
	files := map[string][]byte{}
	err := fs.WalkDir(staticFS, "static", func(name string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, err := staticFS.ReadFile(name)
		files[strings.TrimPrefix(name, "static/")] = data
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return files
}

func TestStatic_EveryFileHasAContentType(t *testing.T) {
	t.Parallel()
	for name := range appFiles(t) {
		if _, ok := contentTypes[path.Ext(name)]; !ok {
			t.Errorf("%s has no content type: it would not be served", name)
		}
	}
}

// The service worker caches the shell for offline use: every file the app loads must be in its
// list, and every listed file must exist.
func TestServiceWorker_ShellListMatchesTheApp(t *testing.T) {
	t.Parallel()
	files := appFiles(t)
	sw := string(files["sw.js"])
	start, end := strings.Index(sw, "const SHELL = ["), strings.Index(sw, "];")
	if start < 0 || end < start {
		t.Fatal("sw.js has no SHELL list")
	}
	listed := map[string]bool{}
	for _, m := range regexp.MustCompile(`'([^']+)'`).FindAllStringSubmatch(sw[start:end], -1) {
		listed[m[1]] = true
		if m[1] != "./" && files[m[1]] == nil {
			t.Errorf("sw.js caches %s, which does not exist", m[1])
		}
	}
	for name := range files {
		switch name {
		case "sw.js", "enroll.html", "enroll.js", "index.html": // not part of the cached shell, or cached as ./
			continue
		}
		if !listed[name] {
			t.Errorf("%s is not in the service worker's SHELL list", name)
		}
	}
}

// The CSP forbids inline script, inline style and eval; the code must not need them, and must not
// build HTML from strings (Trusted Types would stop it anyway).
func TestStatic_NoInlineScriptStyleOrHTMLStrings(t *testing.T) {
	t.Parallel()
	inlineScript := regexp.MustCompile(`<script(?:\s[^>]*)?>\s*[^<\s]`)
	for name, data := range appFiles(t) {
		s := string(data)
		switch path.Ext(name) {
		case ".html":
			if inlineScript.MatchString(s) || strings.Contains(s, "<style") || regexp.MustCompile(`\sstyle=`).MatchString(s) ||
				regexp.MustCompile(`\son[a-z]+=`).MatchString(s) {
				t.Errorf("%s has inline script, style or an event handler attribute", name)
			}
		case ".js":
			for _, bad := range []string{"innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(", "new Function", "setAttribute('style'"} {
				if strings.Contains(s, bad) {
					t.Errorf("%s uses %s", name, bad)
				}
			}
		}
		if m := regexp.MustCompile(`(?:src|href)="(?:https?:)?//`).FindString(s); m != "" {
			t.Errorf("%s loads from another host: %s", name, m)
		}
	}
}

func TestIcons_AreTheDeclaredSizes(t *testing.T) {
	t.Parallel()
	files := appFiles(t)
	for name, size := range map[string]int{"icons/icon-192.png": 192, "icons/icon-512.png": 512} {
		img, err := png.Decode(bytes.NewReader(files[name]))
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if b := img.Bounds(); b.Dx() != size || b.Dy() != size {
			t.Errorf("%s is %dx%d, want %dx%d", name, b.Dx(), b.Dy(), size, size)
		}
		if len(files[name]) > 16<<10 {
			t.Errorf("%s is %d bytes; keep icons small", name, len(files[name]))
		}
	}
}

// TestJavaScriptUnits runs the app's pure modules (RFC 8785 canonicalization with the vectors of
// docs/device-api.md and RFC 8785, base64url, the display checks) under Node's test runner.
func TestJavaScriptUnits(t *testing.T) {
	node, err := exec.LookPath("node")
	if err != nil {
		if os.Getenv("COUNTERSIGN_REQUIRE_NODE") != "" {
			t.Fatal("node is not installed, and COUNTERSIGN_REQUIRE_NODE is set")
		}
		t.Skip("node is not installed; the browser test runs the canonicalization vectors in Chromium too")
	}
	out, err := exec.Command(node, "--test", "testdata/").CombinedOutput()
	if err != nil {
		t.Fatalf("node --test testdata/: %v\n%s", err, out)
	}
}
