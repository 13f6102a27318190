// Package web serves Countersign's authenticator web app: an installable PWA that holds the user's
// device key (a non-extractable ECDSA P-256 WebCrypto key in IndexedDB) and speaks the device API
// described in docs/device-api.md. Everything is static, embedded in the binary and written as plain
// JavaScript modules: there is no build step, no framework and no third-party host.
//
// The server mounts [Handler] for GET {issuer path}app/ (the app, its service worker, manifest,
// icons and styles) and GET {issuer path}enroll (the page an invitation link opens). The handler
// works under any issuer path: it looks only at what follows the last "/app/" or at a trailing
// "/enroll".
//
// There is no CSRF exposure to defend against here: the app authenticates every device API call
// with a fresh JWS in the Authorization header, signed by a key that never leaves the browser. There
// are no cookies and no other ambient authority a cross-site page could ride on.
package web

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"io/fs"
	"net/http"
	"path"
	"strings"
	"time"
)

//go:embed static
var staticFS embed.FS

// ContentSecurityPolicy is sent with every response of the app. Scripts, styles, images, fetches,
// the manifest and the service worker come from our own origin only; nothing may frame the app;
// there is no inline script, eval or <base>. Trusted Types allow only the one policy the app
// defines (named "countersign", which vets the service worker URL), so a stray innerHTML anywhere
// fails closed.
const ContentSecurityPolicy = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; " +
	"connect-src 'self'; font-src 'self'; manifest-src 'self'; worker-src 'self'; object-src 'none'; " +
	"frame-ancestors 'none'; base-uri 'none'; form-action 'self'; " +
	"require-trusted-types-for 'script'; trusted-types countersign"

// permissionsPolicy turns off the powerful features the app never uses and keeps WebAuthn for our
// own origin.
const permissionsPolicy = "camera=(), microphone=(), geolocation=(), payment=(), usb=(), serial=(), " +
	"publickey-credentials-get=(self), publickey-credentials-create=(self)"

// asset is one embedded file, ready to serve.
type asset struct {
	name        string
	data        []byte
	contentType string
	etag        string
}

// contentTypes maps the extensions we embed to their media types. A file with another extension is
// not served (the test checks that every embedded file has a type).
var contentTypes = map[string]string{
	".html":        "text/html; charset=utf-8",
	".js":          "text/javascript; charset=utf-8",
	".css":         "text/css; charset=utf-8",
	".webmanifest": "application/manifest+json",
	".svg":         "image/svg+xml",
	".png":         "image/png",
}

// enrollPage is served at .../enroll; it is not part of the app under /app/ (its relative links
// point into app/).
const enrollPage = "enroll.html"

type handler struct {
	app    map[string]*asset // by path below app/; "" is index.html
	enroll *asset
}

// Handler returns the handler for the web authenticator: GET and HEAD of .../app/ and everything
// below it, and of .../enroll. Unknown files are 404, other methods 405.
func Handler() http.Handler {
	h := &handler{app: map[string]*asset{}}
	sub, err := fs.Sub(staticFS, "static")
	if err != nil {
		panic(err) // the embed pattern guarantees the directory
	}
	err = fs.WalkDir(sub, ".", func(name string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		ct, ok := contentTypes[path.Ext(name)]
		if !ok {
			return nil
		}
		data, err := fs.ReadFile(sub, name)
		if err != nil {
			return err
		}
		sum := sha256.Sum256(data)
		a := &asset{name: name, data: data, contentType: ct, etag: `"` + hex.EncodeToString(sum[:12]) + `"`}
		if name == enrollPage {
			h.enroll = a
		} else {
			h.app[name] = a
		}
		return nil
	})
	if err != nil {
		panic(err) // reading an embed.FS cannot fail
	}
	h.app[""] = h.app["index.html"]
	return h
}

func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	hdr := w.Header()
	setSecurityHeaders(hdr)
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		hdr.Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	a := h.lookup(r.URL.Path)
	if a == nil {
		http.NotFound(w, r)
		return
	}
	hdr.Set("Content-Type", a.contentType)
	hdr.Set("ETag", a.etag)
	// Always revalidate (cheap with the ETag): a security fix must reach users on their next load.
	// The service worker keeps its own copy of the shell for offline use.
	hdr.Set("Cache-Control", "no-cache")
	if a.name == "sw.js" {
		// The worker lives in app/ and controls app/; say so explicitly in case a proxy rewrites
		// paths.
		hdr.Set("Service-Worker-Allowed", "./")
	}
	http.ServeContent(w, r, a.name, time.Time{}, bytes.NewReader(a.data))
}

// lookup finds the asset for a request path: "<base>/enroll" or "<base>/app/<name>".
func (h *handler) lookup(p string) *asset {
	if strings.HasSuffix(p, "/enroll") {
		return h.enroll
	}
	i := strings.LastIndex(p, "/app/")
	if i < 0 {
		return nil
	}
	name := p[i+len("/app/"):]
	if name != "" && !fs.ValidPath(name) {
		return nil
	}
	return h.app[name]
}

func setSecurityHeaders(h http.Header) {
	h.Set("Content-Security-Policy", ContentSecurityPolicy)
	h.Set("X-Frame-Options", "DENY")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("Cross-Origin-Opener-Policy", "same-origin")
	h.Set("Cross-Origin-Resource-Policy", "same-origin")
	h.Set("Permissions-Policy", permissionsPolicy)
}
