package token

import (
	"bytes"
	"cmp"
	"context"
	"crypto"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/countersign/countersign/internal/domain"
)

// KeyStore is where signing keys are kept. domain.Store satisfies it.
type KeyStore interface {
	// ListKeys returns every stored key, oldest first.
	ListKeys(ctx context.Context) ([]domain.SigningKey, error)
	// PutKey inserts or replaces a key by ID.
	PutKey(ctx context.Context, k domain.SigningKey) error
}

// Defaults of [Options].
const (
	DefaultReloadEvery      = 30 * time.Second
	DefaultRetiredRetention = 24 * time.Hour
)

// kidReloadInterval is the least time between two store reads caused by a token with an unknown
// key ID, so that a flood of forged key IDs costs one query a second, not one per token.
const kidReloadInterval = time.Second

// maxTokenBytes bounds the size of a token Verify will parse.
const maxTokenBytes = 256 << 10

// Errors returned by the keyring; test for them with errors.Is.
var (
	// ErrUnsupportedAlgorithm means an algorithm the keyring has no keys for (or cannot have).
	ErrUnsupportedAlgorithm = errors.New("token: unsupported algorithm")
	// ErrInvalidToken means Verify rejected the token itself (as opposed to failing to read keys).
	ErrInvalidToken = errors.New("token: invalid token")
)

// Options configure a [Keyring]. The zero value is usable.
type Options struct {
	// Algorithms to keep keys for: one active and one next key each. Default {"ES256", "RS256"};
	// "PS256" is also supported (with an RSA key of its own). Keys of other algorithms in the store
	// are ignored.
	Algorithms []string
	// ReloadEvery is how often keys are re-read from the store, so that a rotation done by another
	// process (such as `countersign keys rotate`) is picked up without a restart. Default 30s.
	ReloadEvery time.Duration
	// RetiredRetention is how long a retired key stays published and verifies tokens. It must
	// outlive the longest-lived token the key signed. Default 24h.
	RetiredRetention time.Duration
	// Generate makes a new private key for alg. Default: ECDSA P-256 for ES256, RSA 2048 for RS256
	// and PS256. Tests inject a cached generator because RSA generation is slow. The key must be one
	// x509.MarshalPKCS8PrivateKey accepts.
	Generate func(alg string) (crypto.Signer, error)
}

// KeyInfo describes a stored signing key, without its private material (for `countersign keys list`).
type KeyInfo struct {
	// ID is the key ID, the kid of the tokens it signs.
	ID string `json:"kid"`
	// Algorithm is the JWS algorithm the key signs with.
	Algorithm string `json:"alg"`
	// Status is next, active or retired.
	Status domain.KeyStatus `json:"status"`
	// CreatedAt, ActivatedAt and RetiredAt are when the key was made, started signing and stopped.
	CreatedAt   time.Time `json:"created_at"`
	ActivatedAt time.Time `json:"activated_at,omitzero"`
	RetiredAt   time.Time `json:"retired_at,omitzero"`
	// Published tells whether the key is in the JWKS now: next, active, or retired for less than
	// the retention.
	Published bool `json:"published"`
	// Signing tells whether this is the key tokens of its algorithm are signed with (the newest
	// active key of a configured algorithm).
	Signing bool `json:"signing"`
}

// Keyring holds the server's signing keys, in memory and parsed, and signs and verifies tokens with
// them. It is safe for concurrent use. Several keyrings (in several processes) may share one store.
type Keyring struct {
	store   KeyStore
	clock   domain.Clock
	opts    Options
	optsErr error
	sigAlgs []jose.SignatureAlgorithm

	state atomic.Pointer[keyState]

	// reloadMu single-flights reads of the store. A reload that falls due is done by the one caller
	// that gets the lock with TryLock; the others go on with the keys they have.
	reloadMu sync.Mutex
	// lastKidReload is when an unknown key ID last caused a reload; guarded by reloadMu.
	lastKidReload time.Time

	// writeMu serializes Init and Rotate within this process.
	writeMu sync.Mutex
}

// keyState is an immutable snapshot of the published keys.
type keyState struct {
	// due is when (UnixNano) the snapshot must be refreshed: ReloadEvery after loading, or earlier
	// when a retired key's retention ends.
	due    int64
	keys   []*loadedKey          // published keys, in JWKS order
	byKid  map[string]*loadedKey // published keys by ID
	active map[string]*material  // the signing key of each algorithm
	jwks   []byte
}

// loadedKey is a published key: its stored metadata (without private material) and parsed key.
type loadedKey struct {
	meta domain.SigningKey
	m    *material
	// until is when a retired key stops being published; zero for next and active keys.
	until time.Time
}

// publishedAt reports whether the key is published at now.
func (lk *loadedKey) publishedAt(now time.Time) bool {
	return lk.until.IsZero() || now.Before(lk.until)
}

// NewKeyring returns a keyring over store. It reads nothing until used; call Init at start-up to
// make sure every configured algorithm has keys. Invalid options are reported by Init and Reload.
func NewKeyring(store KeyStore, clock domain.Clock, opts Options) *Keyring {
	k := &Keyring{store: store, clock: clock}
	if len(opts.Algorithms) == 0 {
		opts.Algorithms = []string{ES256, RS256}
	}
	var algs []string
	for _, alg := range opts.Algorithms {
		if !supported(alg) {
			k.optsErr = fmt.Errorf("%w: %q (supported: ES256, RS256, PS256)", ErrUnsupportedAlgorithm, alg)
			continue
		}
		if !slices.Contains(algs, alg) {
			algs = append(algs, alg)
			k.sigAlgs = append(k.sigAlgs, jose.SignatureAlgorithm(alg))
		}
	}
	opts.Algorithms = algs
	if opts.ReloadEvery <= 0 {
		opts.ReloadEvery = DefaultReloadEvery
	}
	if opts.RetiredRetention <= 0 {
		opts.RetiredRetention = DefaultRetiredRetention
	}
	if opts.Generate == nil {
		opts.Generate = generateKey
	}
	k.opts = opts
	return k
}

// Init loads the keys and makes sure every configured algorithm has an active key and a next key:
// for an algorithm without an active key it promotes a next key if there is one or generates an
// active key, and it generates a next key where none is left. With keys in place it stores nothing,
// so it is safe to run at every start. Two processes starting at once on an empty store may both
// generate keys; that is harmless (all are published, and every process signs with the newest
// active key).
func (k *Keyring) Init(ctx context.Context) error {
	if k.optsErr != nil {
		return k.optsErr
	}
	if _, err := k.change(ctx, false); err != nil {
		return err
	}
	return k.Reload(ctx)
}

// Rotate rotates the keys of every configured algorithm: the next key (already published) becomes
// active, the active key is retired (RetiredAt = now) and stays published for RetiredRetention, and a
// new next key is generated and published. It returns the keys it stored, without their private
// material (and, should reloading fail after the keys were stored, an error with them). Other
// processes sharing the store start signing with the new key when they next reload
// (within ReloadEvery); until then they sign with the retired key, which still verifies.
//
// An algorithm with no next key (never initialised) gets a new active key at once, which is then
// used before it was published; run Init at start-up to avoid that.
func (k *Keyring) Rotate(ctx context.Context) ([]domain.SigningKey, error) {
	if k.optsErr != nil {
		return nil, k.optsErr
	}
	changed, err := k.change(ctx, true)
	if err != nil {
		return nil, err
	}
	for i := range changed {
		changed[i].PrivateKey = nil
	}
	if err := k.Reload(ctx); err != nil {
		return changed, fmt.Errorf("token: keys rotated, but reloading them failed: %w", err)
	}
	return changed, nil
}

// change computes and stores what Init (rotate false) or Rotate (rotate true) changes. Keys are
// generated before anything is stored, and stored in an order that keeps the store valid at every
// step for a process reading it concurrently: the new next key first, then the promoted active key,
// then the retirements.
func (k *Keyring) change(ctx context.Context, rotate bool) ([]domain.SigningKey, error) {
	k.writeMu.Lock()
	defer k.writeMu.Unlock()
	recs, err := k.store.ListKeys(ctx)
	if err != nil {
		return nil, fmt.Errorf("token: list keys: %w", err)
	}
	now := k.clock.Now().UTC()
	var puts []domain.SigningKey
	for _, alg := range k.opts.Algorithms {
		var actives, nexts []domain.SigningKey
		for _, r := range recs {
			if r.Use != useSig || r.Algorithm != alg {
				continue
			}
			switch r.Status {
			case domain.KeyActive:
				actives = append(actives, r)
			case domain.KeyNext:
				nexts = append(nexts, r)
			}
		}
		slices.SortFunc(nexts, func(a, b domain.SigningKey) int { return -compareKeys(a, b) })

		promote := rotate || len(actives) == 0
		if promote || len(nexts) == 0 {
			next, err := k.generate(alg, domain.KeyNext, now)
			if err != nil {
				return nil, err
			}
			puts = append(puts, next)
		}
		if !promote {
			continue
		}
		if len(nexts) > 0 {
			n := nexts[0]
			n.Status, n.ActivatedAt = domain.KeyActive, now
			puts = append(puts, n)
			nexts = nexts[1:]
		} else {
			a, err := k.generate(alg, domain.KeyActive, now)
			if err != nil {
				return nil, err
			}
			puts = append(puts, a)
		}
		if rotate {
			// Retire every active key, and any surplus next key (left by concurrent rotations).
			for _, group := range [][]domain.SigningKey{actives, nexts} {
				for _, r := range group {
					r.Status, r.RetiredAt = domain.KeyRetired, now
					puts = append(puts, r)
				}
			}
		}
	}
	for _, p := range puts {
		if err := k.store.PutKey(ctx, p); err != nil {
			return nil, fmt.Errorf("token: put key %s: %w", p.ID, err)
		}
	}
	return puts, nil
}

// generate makes and encodes a new key.
func (k *Keyring) generate(alg string, status domain.KeyStatus, now time.Time) (domain.SigningKey, error) {
	priv, err := k.opts.Generate(alg)
	if err != nil {
		return domain.SigningKey{}, fmt.Errorf("token: generate %s key: %w", alg, err)
	}
	if err := checkKeyFits(alg, priv); err != nil {
		return domain.SigningKey{}, err
	}
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return domain.SigningKey{}, fmt.Errorf("token: encode %s key: %w", alg, err)
	}
	key := domain.SigningKey{
		ID:         newKeyID(),
		Algorithm:  alg,
		Use:        useSig,
		Status:     status,
		PrivateKey: der,
		CreatedAt:  now,
	}
	if status == domain.KeyActive {
		key.ActivatedAt = now
	}
	return key, nil
}

// compareKeys orders keys by when they became active, then were created, then by ID, so that
// every process picks the same signing key when the store holds more than one active key.
func compareKeys(a, b domain.SigningKey) int {
	if c := a.ActivatedAt.Compare(b.ActivatedAt); c != 0 {
		return c
	}
	if c := a.CreatedAt.Compare(b.CreatedAt); c != 0 {
		return c
	}
	return cmp.Compare(a.ID, b.ID)
}

// Reload re-reads the keys from the store now. Keys are otherwise reloaded on use once ReloadEvery
// has passed; on failure the keyring keeps the keys it has (dropping retired keys whose retention
// has ended) and tries again ReloadEvery later.
func (k *Keyring) Reload(ctx context.Context) error {
	if k.optsErr != nil {
		return k.optsErr
	}
	k.reloadMu.Lock()
	defer k.reloadMu.Unlock()
	_, err := k.reloadLocked(ctx, k.clock.Now())
	return err
}

// current returns the snapshot to use at now, reloading first when one is due. Only the first
// caller to see a due reload does it; concurrent callers use the snapshot they have meanwhile.
func (k *Keyring) current(ctx context.Context, now time.Time) (*keyState, error) {
	st := k.state.Load()
	if st != nil && now.UnixNano() < st.due {
		return st, nil
	}
	if st == nil {
		if k.optsErr != nil {
			return nil, k.optsErr
		}
		// Nothing loaded yet: everyone waits for the first load.
		k.reloadMu.Lock()
		defer k.reloadMu.Unlock()
		if st := k.state.Load(); st != nil {
			return st, nil
		}
		return k.reloadLocked(ctx, now)
	}
	if !k.reloadMu.TryLock() {
		return st, nil
	}
	defer k.reloadMu.Unlock()
	if st = k.state.Load(); now.UnixNano() < st.due {
		return st, nil // someone reloaded while we were getting the lock
	}
	st, _ = k.reloadLocked(ctx, now) // on error st is the old keys, pruned
	return st, nil
}

// reloadForKid reloads once because a token names a key ID that seen does not have. It returns the
// newer snapshot, and the error of the store if reading it failed.
func (k *Keyring) reloadForKid(ctx context.Context, seen *keyState, now time.Time) (*keyState, error) {
	k.reloadMu.Lock()
	defer k.reloadMu.Unlock()
	if cur := k.state.Load(); cur != seen {
		return cur, nil // reloaded by someone else meanwhile
	}
	if !k.lastKidReload.IsZero() && now.Sub(k.lastKidReload) < kidReloadInterval {
		return seen, nil
	}
	k.lastKidReload = now
	st, err := k.reloadLocked(ctx, now)
	if st == nil {
		st = seen
	}
	return st, err
}

// reloadLocked reads the store and installs a new snapshot. On failure it installs the previous
// keys, pruned at now, to be reloaded ReloadEvery later, and returns them with the error (or nil
// and the error when nothing was loaded before). The caller holds reloadMu.
func (k *Keyring) reloadLocked(ctx context.Context, now time.Time) (*keyState, error) {
	prev := k.state.Load()
	recs, err := k.store.ListKeys(ctx)
	if err == nil {
		var st *keyState
		if st, err = k.build(prev, recs, now); err == nil {
			k.state.Store(st)
			return st, nil
		}
	} else {
		err = fmt.Errorf("token: list keys: %w", err)
	}
	if prev == nil {
		return nil, err
	}
	st, jerr := k.assemble(prev.keys, now)
	if jerr != nil {
		return prev, errors.Join(err, jerr)
	}
	k.state.Store(st)
	return st, err
}

// build makes a snapshot of the stored keys published at now, reusing parsed keys from prev.
func (k *Keyring) build(prev *keyState, recs []domain.SigningKey, now time.Time) (*keyState, error) {
	items := make([]*loadedKey, 0, len(recs))
	seen := make(map[string]bool, len(recs))
	for _, r := range recs {
		if r.Use != useSig || !slices.Contains(k.opts.Algorithms, r.Algorithm) || seen[r.ID] {
			continue
		}
		seen[r.ID] = true
		lk := &loadedKey{}
		switch r.Status {
		case domain.KeyNext, domain.KeyActive:
		case domain.KeyRetired:
			lk.until = r.RetiredAt.Add(k.opts.RetiredRetention)
			if !lk.publishedAt(now) {
				continue
			}
		default:
			continue
		}
		if p := prev.lookup(r.ID); p != nil && string(p.m.alg) == r.Algorithm {
			lk.m = p.m
		} else {
			m, err := parseMaterial(r.ID, r.Algorithm, r.PrivateKey)
			if err != nil {
				return nil, err
			}
			lk.m = m
		}
		lk.meta = r
		lk.meta.PrivateKey = nil
		items = append(items, lk)
	}
	return k.assemble(items, now)
}

// lookup returns the published key with ID kid, or nil; st may be nil.
func (st *keyState) lookup(kid string) *loadedKey {
	if st == nil {
		return nil
	}
	return st.byKid[kid]
}

// assemble makes a snapshot of the keys among items that are published at now.
func (k *Keyring) assemble(items []*loadedKey, now time.Time) (*keyState, error) {
	st := &keyState{
		due:    now.Add(k.opts.ReloadEvery).UnixNano(),
		byKid:  make(map[string]*loadedKey, len(items)),
		active: make(map[string]*material, len(k.opts.Algorithms)),
	}
	signing := make(map[string]*loadedKey, len(k.opts.Algorithms))
	for _, lk := range items {
		if !lk.publishedAt(now) {
			continue
		}
		if !lk.until.IsZero() {
			st.due = min(st.due, lk.until.UnixNano())
		}
		st.keys = append(st.keys, lk)
		st.byKid[lk.meta.ID] = lk
		if lk.meta.Status == domain.KeyActive {
			if cur := signing[lk.meta.Algorithm]; cur == nil || compareKeys(lk.meta, cur.meta) > 0 {
				signing[lk.meta.Algorithm] = lk
			}
		}
	}
	for alg, lk := range signing {
		st.active[alg] = lk.m
	}
	// JWKS order: by configured algorithm, then active, next, retired, newest first.
	rank := map[domain.KeyStatus]int{domain.KeyActive: 0, domain.KeyNext: 1, domain.KeyRetired: 2}
	slices.SortStableFunc(st.keys, func(a, b *loadedKey) int {
		if c := cmp.Compare(slices.Index(k.opts.Algorithms, a.meta.Algorithm), slices.Index(k.opts.Algorithms, b.meta.Algorithm)); c != 0 {
			return c
		}
		if c := cmp.Compare(rank[a.meta.Status], rank[b.meta.Status]); c != 0 {
			return c
		}
		return -compareKeys(a.meta, b.meta)
	})
	set := jose.JSONWebKeySet{Keys: make([]jose.JSONWebKey, 0, len(st.keys))}
	for _, lk := range st.keys {
		set.Keys = append(set.Keys, lk.m.jwk)
	}
	jwks, err := json.Marshal(set)
	if err != nil {
		return nil, fmt.Errorf("token: encode JWKS: %w", err)
	}
	st.jwks = jwks
	return st, nil
}

// JWKS returns the public JWK set (JSON) of every published signing key: next, active, and retired
// within the retention, each with kid, alg and use "sig". It holds no private material. The bytes
// are built when keys are loaded; each call returns its own copy.
func (k *Keyring) JWKS(ctx context.Context) ([]byte, error) {
	st, err := k.current(ctx, k.clock.Now())
	if err != nil {
		return nil, err
	}
	return bytes.Clone(st.jwks), nil
}

// List returns every stored signing key (use "sig", any algorithm), oldest first, read from the
// store now, without private material.
func (k *Keyring) List(ctx context.Context) ([]KeyInfo, error) {
	recs, err := k.store.ListKeys(ctx)
	if err != nil {
		return nil, fmt.Errorf("token: list keys: %w", err)
	}
	now := k.clock.Now()
	signing := map[string]domain.SigningKey{}
	var out []KeyInfo
	for _, r := range recs {
		if r.Use != useSig {
			continue
		}
		info := KeyInfo{
			ID:          r.ID,
			Algorithm:   r.Algorithm,
			Status:      r.Status,
			CreatedAt:   r.CreatedAt,
			ActivatedAt: r.ActivatedAt,
			RetiredAt:   r.RetiredAt,
		}
		switch r.Status {
		case domain.KeyNext:
			info.Published = true
		case domain.KeyActive:
			info.Published = true
			if cur, ok := signing[r.Algorithm]; slices.Contains(k.opts.Algorithms, r.Algorithm) && (!ok || compareKeys(r, cur) > 0) {
				signing[r.Algorithm] = r
			}
		case domain.KeyRetired:
			info.Published = now.Before(r.RetiredAt.Add(k.opts.RetiredRetention))
		}
		out = append(out, info)
	}
	for i := range out {
		if s, ok := signing[out[i].Algorithm]; ok && s.ID == out[i].ID {
			out[i].Signing = true
		}
	}
	return out, nil
}
