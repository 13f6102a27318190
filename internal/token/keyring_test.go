package token

import (
	"crypto/x509"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/countersign/countersign/internal/domain"
)

// header returns the protected header of a compact JWS.
func header(t *testing.T, compact string) jose.Header {
	t.Helper()
	obj, err := jose.ParseSignedCompact(compact, []jose.SignatureAlgorithm{jose.ES256, jose.RS256, jose.PS256})
	if err != nil {
		t.Fatalf("parse %q: %v", compact, err)
	}
	return obj.Signatures[0].Protected
}

// jwksKids returns the kids in a JWK set, failing the test if the set is not valid JSON.
func jwksKids(t *testing.T, kr *Keyring) []string {
	t.Helper()
	raw, err := kr.JWKS(t.Context())
	if err != nil {
		t.Fatalf("JWKS: %v", err)
	}
	var set jose.JSONWebKeySet
	if err := json.Unmarshal(raw, &set); err != nil {
		t.Fatalf("JWKS is not a JWK set: %v\n%s", err, raw)
	}
	var kids []string
	for _, k := range set.Keys {
		kids = append(kids, k.KeyID)
	}
	return kids
}

func mustSign(t *testing.T, kr *Keyring, alg, typ string, claims any) string {
	t.Helper()
	tok, err := kr.Sign(t.Context(), alg, typ, claims)
	if err != nil {
		t.Fatalf("Sign(%s): %v", alg, err)
	}
	return tok
}

func TestInit_CreatesActiveAndNextKeyPerAlgorithm(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	if got := f.store.count(); got != 2*len(allAlgs) {
		t.Fatalf("stored %d keys, want %d", got, 2*len(allAlgs))
	}
	now := f.clock.Now()
	for _, alg := range allAlgs {
		for _, id := range []string{f.activeKid(t, alg), f.nextKid(t, alg)} {
			k := f.store.get(t, id)
			if k.Use != "sig" {
				t.Errorf("%s key %s: use %q, want sig", alg, id, k.Use)
			}
			if len(id) < 16 { // 16 base64url characters are 96 bits
				t.Errorf("%s key ID %q is shorter than 96 bits", alg, id)
			}
			if !k.CreatedAt.Equal(now) {
				t.Errorf("%s key %s: CreatedAt %v, want %v", alg, id, k.CreatedAt, now)
			}
			if _, err := x509.ParsePKCS8PrivateKey(k.PrivateKey); err != nil {
				t.Fatalf("%s key %s: private key is not PKCS #8: %v", alg, id, err)
			}
		}
		if a := f.store.get(t, f.activeKid(t, alg)); !a.ActivatedAt.Equal(now) {
			t.Errorf("%s active key: ActivatedAt %v, want %v", alg, a.ActivatedAt, now)
		}
		if n := f.store.get(t, f.nextKid(t, alg)); !n.ActivatedAt.IsZero() {
			t.Errorf("%s next key: ActivatedAt %v, want zero", alg, n.ActivatedAt)
		}
	}
	if kids := jwksKids(t, f.kr); len(kids) != 2*len(allAlgs) {
		t.Errorf("JWKS has %d keys, want %d (active and next per algorithm)", len(kids), 2*len(allAlgs))
	}
}

func TestInit_SecondInitCreatesNothing(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	before, _ := f.store.ListKeys(t.Context())
	if err := f.kr.Init(t.Context()); err != nil {
		t.Fatalf("second Init: %v", err)
	}
	f.otherProcess(t) // another process starting on the same store
	after, _ := f.store.ListKeys(t.Context())
	if len(after) != len(before) {
		t.Fatalf("second Init changed the store from %d to %d keys", len(before), len(after))
	}
	for i := range before {
		if before[i].ID != after[i].ID || before[i].Status != after[i].Status {
			t.Errorf("key %d changed: %s/%s -> %s/%s", i, before[i].ID, before[i].Status, after[i].ID, after[i].Status)
		}
	}
}

func TestInit_DefaultsToES256AndRS256(t *testing.T) {
	t.Parallel()
	store := &memKeys{}
	kr := NewKeyring(store, newFakeClock(), Options{Generate: testGenerate})
	if err := kr.Init(t.Context()); err != nil {
		t.Fatal(err)
	}
	for _, alg := range []string{ES256, RS256} {
		if len(store.byStatus(alg, domain.KeyActive)) != 1 || len(store.byStatus(alg, domain.KeyNext)) != 1 {
			t.Errorf("%s: want one active and one next key", alg)
		}
	}
	if store.count() != 4 {
		t.Errorf("stored %d keys, want 4", store.count())
	}
	if _, err := kr.Sign(t.Context(), PS256, "", map[string]any{}); !errors.Is(err, ErrUnsupportedAlgorithm) {
		t.Errorf("Sign PS256 without configuring it: %v, want ErrUnsupportedAlgorithm", err)
	}
}

func TestInit_RejectsUnsupportedAlgorithm(t *testing.T) {
	t.Parallel()
	for _, alg := range []string{"HS256", "none", "ES384", "es256"} {
		kr := NewKeyring(&memKeys{}, newFakeClock(), Options{Algorithms: []string{alg}, Generate: testGenerate})
		if err := kr.Init(t.Context()); !errors.Is(err, ErrUnsupportedAlgorithm) {
			t.Errorf("Init with %q: %v, want ErrUnsupportedAlgorithm", alg, err)
		}
	}
}

func TestInit_PromotesAnOrphanNextKey(t *testing.T) {
	t.Parallel()
	store := &memKeys{}
	clock := newFakeClock()
	opts := Options{Algorithms: []string{ES256}, Generate: testGenerate}
	seed := NewKeyring(store, clock, opts)
	next, err := seed.generate(ES256, domain.KeyNext, clock.Now())
	if err != nil {
		t.Fatal(err)
	}
	if err := store.PutKey(t.Context(), next); err != nil {
		t.Fatal(err)
	}
	if err := NewKeyring(store, clock, opts).Init(t.Context()); err != nil {
		t.Fatal(err)
	}
	if got := store.byStatus(ES256, domain.KeyActive); !slices.Equal(got, []string{next.ID}) {
		t.Errorf("active keys %v, want the published next key %s", got, next.ID)
	}
	if got := store.byStatus(ES256, domain.KeyNext); len(got) != 1 {
		t.Errorf("next keys %v, want a new one", got)
	}
}

func TestSignVerify_RoundTrip(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	claims := map[string]any{"iss": "https://cs.example", "sub": "alice", "scope": "openid trade"}
	for _, alg := range allAlgs {
		for _, typ := range []string{"at+jwt", "JWT"} {
			t.Run(alg+"/"+typ, func(t *testing.T) {
				t.Parallel()
				tok := mustSign(t, f.kr, alg, typ, claims)
				h := header(t, tok)
				if h.Algorithm != alg || h.KeyID != f.activeKid(t, alg) || h.ExtraHeaders[jose.HeaderType] != typ {
					t.Errorf("header alg=%q kid=%q typ=%v, want %s, the active kid, %s", h.Algorithm, h.KeyID, h.ExtraHeaders[jose.HeaderType], alg, typ)
				}
				payload, err := f.kr.Verify(t.Context(), tok, typ)
				if err != nil {
					t.Fatalf("Verify: %v", err)
				}
				var got map[string]any
				if err := json.Unmarshal(payload, &got); err != nil || got["sub"] != "alice" || got["scope"] != "openid trade" {
					t.Errorf("payload %s (%v), want the signed claims", payload, err)
				}
				other := map[string]string{"at+jwt": "JWT", "JWT": "at+jwt"}[typ]
				if _, err := f.kr.Verify(t.Context(), tok, other); !errors.Is(err, ErrInvalidToken) {
					t.Errorf("Verify with allowed typ %q: %v, want ErrInvalidToken", other, err)
				}
			})
		}
	}
}

func TestSign_WithoutTypOmitsTheHeader(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	tok := mustSign(t, f.kr, ES256, "", json.RawMessage(`{"a":1}`))
	if _, ok := header(t, tok).ExtraHeaders[jose.HeaderType]; ok {
		t.Error("typ header present, want none")
	}
	payload, err := f.kr.Verify(t.Context(), tok)
	if err != nil || string(payload) != `{"a":1}` {
		t.Errorf("Verify without typ check: %s, %v", payload, err)
	}
	if _, err := f.kr.Verify(t.Context(), tok, "JWT"); !errors.Is(err, ErrInvalidToken) {
		t.Errorf("Verify requiring typ JWT of a token without typ: %v, want ErrInvalidToken", err)
	}
}

func TestVerify_TypComparedAsRFC7515Says(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	tok := mustSign(t, f.kr, ES256, "at+jwt", map[string]any{})
	for _, allowed := range []string{"at+jwt", "AT+JWT", "application/at+jwt"} {
		if _, err := f.kr.Verify(t.Context(), tok, "JWT", allowed); err != nil {
			t.Errorf("allowed typ %q: %v", allowed, err)
		}
	}
}

func TestSign_RejectsUnknownAlgorithm(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	for _, alg := range []string{"", "none", "HS256", "ES384", "es256"} {
		if _, err := f.kr.Sign(t.Context(), alg, "JWT", map[string]any{}); !errors.Is(err, ErrUnsupportedAlgorithm) {
			t.Errorf("Sign(%q): %v, want ErrUnsupportedAlgorithm", alg, err)
		}
	}
}

func TestRotate_NextKeyBecomesActive(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	oldActive, oldNext := map[string]string{}, map[string]string{}
	for _, alg := range allAlgs {
		oldActive[alg], oldNext[alg] = f.activeKid(t, alg), f.nextKid(t, alg)
	}
	published := jwksKids(t, f.kr)

	f.clock.Advance(time.Minute)
	changed, err := f.kr.Rotate(t.Context())
	if err != nil {
		t.Fatalf("Rotate: %v", err)
	}
	if len(changed) != 3*len(allAlgs) {
		t.Errorf("Rotate returned %d keys, want %d (new next, promoted, retired per algorithm)", len(changed), 3*len(allAlgs))
	}
	for _, k := range changed {
		if k.PrivateKey != nil {
			t.Errorf("Rotate returned key %s with its private key", k.ID)
		}
	}
	now := f.clock.Now()
	for _, alg := range allAlgs {
		active := f.activeKid(t, alg)
		if active != oldNext[alg] {
			t.Errorf("%s: active key is %s, want the old next key %s", alg, active, oldNext[alg])
		}
		if !slices.Contains(published, active) {
			t.Errorf("%s: new active key %s was not in the JWKS before the rotation", alg, active)
		}
		if a := f.store.get(t, active); !a.ActivatedAt.Equal(now) {
			t.Errorf("%s: ActivatedAt %v, want %v", alg, a.ActivatedAt, now)
		}
		retired := f.store.get(t, oldActive[alg])
		if retired.Status != domain.KeyRetired || !retired.RetiredAt.Equal(now) {
			t.Errorf("%s: old active key is %s retired at %v, want retired at %v", alg, retired.Status, retired.RetiredAt, now)
		}
		if next := f.nextKid(t, alg); next == oldNext[alg] || next == oldActive[alg] {
			t.Errorf("%s: no new next key", alg)
		}
		if got := header(t, mustSign(t, f.kr, alg, "JWT", map[string]any{})).KeyID; got != active {
			t.Errorf("%s: signed with %s after Rotate, want %s", alg, got, active)
		}
	}
}

func TestRotate_OldTokensVerifyUntilRetentionEnds(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	tokens := map[string]string{}
	for _, alg := range allAlgs {
		tokens[alg] = mustSign(t, f.kr, alg, "at+jwt", map[string]any{"sub": "alice"})
	}
	if _, err := f.kr.Rotate(t.Context()); err != nil {
		t.Fatal(err)
	}
	for alg, tok := range tokens {
		kid := header(t, tok).KeyID
		if !slices.Contains(jwksKids(t, f.kr), kid) {
			t.Errorf("%s: retired key %s left the JWKS at once", alg, kid)
		}
		if _, err := f.kr.Verify(t.Context(), tok, "at+jwt"); err != nil {
			t.Errorf("%s: token of the retired key: %v", alg, err)
		}
	}

	f.clock.Advance(f.opts.RetiredRetention - time.Nanosecond)
	for alg, tok := range tokens {
		if _, err := f.kr.Verify(t.Context(), tok, "at+jwt"); err != nil {
			t.Errorf("%s: just before the retention ends: %v", alg, err)
		}
	}

	f.clock.Advance(time.Nanosecond)
	kids := jwksKids(t, f.kr)
	if len(kids) != 2*len(allAlgs) {
		t.Errorf("JWKS has %d keys after the retention, want %d", len(kids), 2*len(allAlgs))
	}
	for alg, tok := range tokens {
		kid := header(t, tok).KeyID
		if slices.Contains(kids, kid) {
			t.Errorf("%s: key %s still in the JWKS after the retention", alg, kid)
		}
		if _, err := f.kr.Verify(t.Context(), tok, "at+jwt"); !errors.Is(err, ErrInvalidToken) {
			t.Errorf("%s: token of a key past retention: %v, want ErrInvalidToken", alg, err)
		}
	}
}

func TestRotate_ByAnotherProcessIsSeenAfterReloadEvery(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	cli := f.otherProcess(t) // `countersign keys rotate`
	oldKid, newKid := f.activeKid(t, ES256), f.nextKid(t, ES256)
	if _, err := cli.Rotate(t.Context()); err != nil {
		t.Fatal(err)
	}

	// Until it reloads, the server signs with the key it has: retired now, but still valid.
	f.clock.Advance(f.opts.ReloadEvery - time.Second)
	if got := header(t, mustSign(t, f.kr, ES256, "JWT", map[string]any{})).KeyID; got != oldKid {
		t.Errorf("signed with %s before ReloadEvery, want the cached %s", got, oldKid)
	}
	// Tokens the CLI's keyring signs with the new key verify at once: it was published as next.
	lists := f.store.lists.Load()
	if _, err := f.kr.Verify(t.Context(), mustSign(t, cli, ES256, "JWT", map[string]any{})); err != nil {
		t.Errorf("token of the new active key before reload: %v", err)
	}
	if f.store.lists.Load() != lists {
		t.Error("Verify of a published kid read the store")
	}

	f.clock.Advance(time.Second)
	if got := header(t, mustSign(t, f.kr, ES256, "JWT", map[string]any{})).KeyID; got != newKid {
		t.Errorf("signed with %s after ReloadEvery, want the new active key %s", got, newKid)
	}
}

func TestVerify_UnknownKidReloadsOnce(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	other := f.otherProcess(t)
	// Two rotations elsewhere: the new active key was never published while f.kr was looking.
	for range 2 {
		if _, err := other.Rotate(t.Context()); err != nil {
			t.Fatal(err)
		}
	}
	tok := mustSign(t, other, ES256, "at+jwt", map[string]any{"sub": "alice"})
	lists := f.store.lists.Load()
	if _, err := f.kr.Verify(t.Context(), tok, "at+jwt"); err != nil {
		t.Fatalf("token of a key made by another process: %v", err)
	}
	if got := f.store.lists.Load() - lists; got != 1 {
		t.Errorf("read the store %d times, want 1", got)
	}

	// A flood of forged kids costs at most one read a second.
	forged := forge(t, "ES256", "forged-kid", `{"sub":"mallory"}`)
	for range 10 {
		if _, err := f.kr.Verify(t.Context(), forged); !errors.Is(err, ErrInvalidToken) {
			t.Fatalf("forged kid: %v, want ErrInvalidToken", err)
		}
	}
	if got := f.store.lists.Load() - lists; got != 1 {
		t.Errorf("read the store %d times for unknown kids within a second, want 1 in all", got)
	}
	f.clock.Advance(time.Second)
	f.kr.Verify(t.Context(), forged)
	if got := f.store.lists.Load() - lists; got != 2 {
		t.Errorf("read the store %d times a second later, want 2 in all", got)
	}
}

func TestJWKS_HasOnlyPublicMembers(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	if _, err := f.kr.Rotate(t.Context()); err != nil { // so that retired keys are in the set too
		t.Fatal(err)
	}
	raw, err := f.kr.JWKS(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	var set struct {
		Keys []map[string]any `json:"keys"`
	}
	if err := json.Unmarshal(raw, &set); err != nil {
		t.Fatal(err)
	}
	if len(set.Keys) != 3*len(allAlgs) {
		t.Errorf("JWKS has %d keys, want %d", len(set.Keys), 3*len(allAlgs))
	}
	for _, k := range set.Keys {
		for _, private := range []string{"d", "p", "q", "dp", "dq", "qi", "k", "oth"} {
			if _, ok := k[private]; ok {
				t.Errorf("key %v has private member %q", k["kid"], private)
			}
		}
		if k["use"] != "sig" || k["kid"] == "" || !slices.Contains(allAlgs, k["alg"].(string)) {
			t.Errorf("key %v: want kid, alg and use sig", k)
		}
	}
	raw[0] = 'X' // JWKS returns a copy
	if again, _ := f.kr.JWKS(t.Context()); again[0] != '{' {
		t.Error("changing the returned bytes changed the cached JWKS")
	}
}

func TestList_DescribesKeysWithoutPrivateMaterial(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	oldActive := f.activeKid(t, RS256)
	f.clock.Advance(time.Minute)
	if _, err := f.kr.Rotate(t.Context()); err != nil {
		t.Fatal(err)
	}
	f.clock.Advance(f.opts.RetiredRetention)
	infos, err := f.kr.List(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if len(infos) != 3*len(allAlgs) {
		t.Fatalf("List returned %d keys, want %d", len(infos), 3*len(allAlgs))
	}
	signing := 0
	for _, in := range infos {
		if in.Signing {
			signing++
			if in.Status != domain.KeyActive {
				t.Errorf("signing key %s is %s", in.ID, in.Status)
			}
		}
		if want := in.Status != domain.KeyRetired; in.Published != want {
			t.Errorf("key %s (%s): published %v, want %v", in.ID, in.Status, in.Published, want)
		}
		if in.ID == oldActive && (in.Status != domain.KeyRetired || in.RetiredAt.IsZero()) {
			t.Errorf("old RS256 key: %+v, want retired", in)
		}
	}
	if signing != len(allAlgs) {
		t.Errorf("%d signing keys, want one per algorithm", signing)
	}
	out, _ := json.Marshal(infos)
	if strings.Contains(string(out), "private") {
		t.Errorf("List JSON mentions private material: %s", out)
	}
}

func TestKeyring_NewestActiveKeySignsWhenThereAreTwo(t *testing.T) {
	t.Parallel()
	// Two processes rotating at once can leave two active keys; every process must pick the same.
	f := newFixture(t)
	extra, err := f.kr.generate(ES256, domain.KeyActive, f.clock.Now().Add(time.Second))
	if err != nil {
		t.Fatal(err)
	}
	if err := f.store.PutKey(t.Context(), extra); err != nil {
		t.Fatal(err)
	}
	for _, kr := range []*Keyring{f.kr, f.otherProcess(t)} {
		if err := kr.Reload(t.Context()); err != nil {
			t.Fatal(err)
		}
		if got := header(t, mustSign(t, kr, ES256, "JWT", map[string]any{})).KeyID; got != extra.ID {
			t.Errorf("signed with %s, want the newest active key %s", got, extra.ID)
		}
	}
}

func TestReload_IsNotDoneBeforeReloadEvery(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	lists := f.store.lists.Load()
	for range 100 {
		mustSign(t, f.kr, ES256, "at+jwt", map[string]any{})
		f.clock.Advance(f.opts.ReloadEvery / 200)
	}
	if got := f.store.lists.Load() - lists; got != 0 {
		t.Errorf("read the store %d times within ReloadEvery, want 0", got)
	}
	f.clock.Advance(f.opts.ReloadEvery)
	mustSign(t, f.kr, ES256, "at+jwt", map[string]any{})
	mustSign(t, f.kr, ES256, "at+jwt", map[string]any{})
	if got := f.store.lists.Load() - lists; got != 1 {
		t.Errorf("read the store %d times once due, want 1", got)
	}
}

func TestReload_IsSingleFlight(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	entered, release := make(chan struct{}), make(chan struct{})
	var once sync.Once
	f.store.onList = func() {
		once.Do(func() {
			close(entered)
			<-release
		})
	}
	lists := f.store.lists.Load()
	f.clock.Advance(f.opts.ReloadEvery)

	done := make(chan error)
	go func() { // the caller that takes the reload, held inside ListKeys
		_, err := f.kr.Sign(t.Context(), ES256, "JWT", map[string]any{})
		done <- err
	}()
	<-entered
	var wg sync.WaitGroup
	for range 50 { // callers arriving meanwhile carry on with the keys they have
		wg.Go(func() {
			if _, err := f.kr.Sign(t.Context(), ES256, "JWT", map[string]any{}); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if got := f.store.lists.Load() - lists; got != 1 {
		t.Errorf("%d concurrent reloads, want 1", got)
	}
	close(release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

func TestReload_StoreFailureKeepsTheKeys(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	tok := mustSign(t, f.kr, ES256, "JWT", map[string]any{})
	if _, err := f.kr.Rotate(t.Context()); err != nil {
		t.Fatal(err)
	}
	f.store.failList.Store(true)
	if err := f.kr.Reload(t.Context()); err == nil {
		t.Error("Reload with the store down: no error")
	}
	f.clock.Advance(f.opts.ReloadEvery)
	if _, err := f.kr.Sign(t.Context(), ES256, "JWT", map[string]any{}); err != nil {
		t.Errorf("Sign with the store down: %v", err)
	}
	if _, err := f.kr.Verify(t.Context(), tok, "JWT"); err != nil {
		t.Errorf("Verify with the store down: %v", err)
	}
	// The retention still ends on time. The kid is then unknown, and the store cannot be asked about
	// it, so the error is the store's.
	f.clock.Advance(f.opts.RetiredRetention)
	if payload, err := f.kr.Verify(t.Context(), tok, "JWT"); err == nil {
		t.Errorf("Verify past retention with the store down = %s, want an error", payload)
	}
	if kids := jwksKids(t, f.kr); slices.Contains(kids, header(t, tok).KeyID) {
		t.Error("key past retention still in the JWKS with the store down")
	}
}

func TestKeyring_LoadsOnFirstUseWithoutInit(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	tok := mustSign(t, f.kr, ES256, "JWT", map[string]any{})
	verifier := NewKeyring(f.store, f.clock, f.opts) // a process that only verifies
	if _, err := verifier.Verify(t.Context(), tok, "JWT"); err != nil {
		t.Errorf("Verify without Init: %v", err)
	}
	empty := NewKeyring(&memKeys{}, f.clock, f.opts)
	if _, err := empty.Sign(t.Context(), ES256, "JWT", map[string]any{}); err == nil {
		t.Error("Sign on an empty store without Init: no error")
	}
}

func TestKeyring_ConcurrentUseDuringRotation(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	other := f.otherProcess(t)
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			alg := allAlgs[i%len(allAlgs)]
			for range 20 {
				tok, err := f.kr.Sign(t.Context(), alg, "at+jwt", map[string]any{"i": i})
				if err != nil {
					t.Error(err)
					return
				}
				if _, err := other.Verify(t.Context(), tok, "at+jwt"); err != nil {
					t.Error(err)
					return
				}
				f.clock.Advance(time.Second)
			}
		})
	}
	for range 3 {
		if _, err := other.Rotate(t.Context()); err != nil {
			t.Error(err)
		}
	}
	wg.Wait()
}
