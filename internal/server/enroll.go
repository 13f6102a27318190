package server

import (
	"net/http"
)

// enrollPage is what an invitation link opens in a browser until the authenticator web app is
// served: it explains how to enroll with the terminal authenticator. The code stays in the URL
// fragment, which the browser never sends to us; the page reads it locally.
const enrollPage = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>Enroll your authenticator - Countersign</title>
<style>body{font:16px/1.5 system-ui,sans-serif;max-width:40rem;margin:2rem auto;padding:0 1rem;color:#111}
code{background:#eee;padding:.1rem .3rem;border-radius:3px;word-break:break-all}</style></head>
<body><main><h1>Enroll your authenticator</h1>
<p>This one-time link enrolls a device that will approve or deny what agents ask on your behalf.</p>
<p>With the terminal authenticator, run:</p>
<p><code id="cmd">countersign device enroll 'THIS PAGE URL' --key you.key</code></p>
<p>The link works once and expires; ask your administrator for a new one if it fails.</p></main>
<script src="enroll.js"></script></body></html>
`

const enrollScript = `document.getElementById('cmd').textContent = "countersign device enroll '" + location.href + "' --key you.key";`

func (s *Server) handleEnrollPage(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Content-Security-Policy", "default-src 'none'; script-src 'self'; style-src 'unsafe-inline'; base-uri 'none'; frame-ancestors 'none'")
	h.Set("Cache-Control", "no-store")
	_, _ = w.Write([]byte(enrollPage))
}

func (s *Server) handleEnrollScript(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Content-Type", "text/javascript; charset=utf-8")
	h.Set("Cache-Control", "public, max-age=300")
	_, _ = w.Write([]byte(enrollScript))
}
