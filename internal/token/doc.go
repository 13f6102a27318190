// Package token owns the server's signing keys, publishes them as a JWK set, and signs and verifies
// the JWTs the server itself issues (RFC 9068 access tokens, OpenID Connect ID tokens).
//
// A [Keyring] keeps, for each configured algorithm, one active key (signs), one next key (published
// but not used yet, so that relying parties see it in the JWKS before it signs anything) and the
// retired keys that still need to verify tokens they signed. Keys live in the store; the keyring
// caches them, parsed, in memory and re-reads them every [Options.ReloadEvery], so a rotation done by
// another process (the CLI, another replica) is picked up without a restart.
//
// All JOSE work is done by github.com/go-jose/go-jose/v4. The package knows nothing of HTTP.
package token
