// Package authz holds Countersign's use cases: the CIBA request lifecycle, client authentication,
// RAR validation and display, device enrollment and signed decisions, and token issuance,
// introspection and revocation. It knows nothing of HTTP: the server parses requests into the typed
// parameters here and renders what comes back. Only this package maps domain errors to OAuth errors.
package authz

import (
	"context"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/countersign/countersign/internal/domain"
)

// Signer signs and verifies the JWTs the server issues. *token.Keyring implements it.
type Signer interface {
	Sign(ctx context.Context, alg, typ string, claims any) (string, error)
	Verify(ctx context.Context, compact string, allowedTyp ...string) ([]byte, error)
}

// Options are the server-wide settings the use cases need.
type Options struct {
	// Issuer is the issuer identifier exactly as published in discovery.
	Issuer string

	AccessTokenTTL  time.Duration
	IDTokenTTL      time.Duration
	RefreshTokenTTL time.Duration

	// DefaultExpiry is a request's lifetime when the client sends no requested_expiry; MaxExpiry
	// caps what a client may ask for.
	DefaultExpiry time.Duration
	MaxExpiry     time.Duration
	// PollInterval is the interval returned by the backchannel endpoint; SlowDownStep is how much it
	// grows each time a client polls too fast.
	PollInterval time.Duration
	SlowDownStep time.Duration
	// MaxLongPoll caps how long a token request with Prefer: wait is held.
	MaxLongPoll time.Duration

	// MaxPendingPerUser and MaxRequestsPerMinute stop an agent from flooding a person with prompts.
	MaxPendingPerUser    int
	MaxRequestsPerMinute int
	// EnrollmentTTL is how long an invitation link stays valid.
	EnrollmentTTL time.Duration
	// ReportHold is how long a client's requests to a user are refused after the user reported one.
	ReportHold time.Duration
	// ReminderBefore is how long before expiry a still pending request is reminded (for requests
	// that live at least twice as long); zero disables reminders.
	ReminderBefore time.Duration

	// DefaultChannels are the notification channels of users who list none, in order.
	DefaultChannels []string
	// Channels tells which channels are configured (a user's list may name others; they are skipped).
	Channels map[string]bool
	// RequireNumberMatching and RequireUserVerification apply to every request of these clients.
	RequireNumberMatching   map[string]bool
	RequireUserVerification map[string]bool

	// DetailTypes are the registered authorization_details types.
	DetailTypes *DetailTypes
	// HTTPClient fetches client jwks_uri documents.
	HTTPClient *http.Client
	Logger     *slog.Logger
}

func (o *Options) applyDefaults() {
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&o.AccessTokenTTL, 10*time.Minute)
	def(&o.IDTokenTTL, 10*time.Minute)
	def(&o.RefreshTokenTTL, 30*24*time.Hour)
	def(&o.DefaultExpiry, 300*time.Second)
	def(&o.MaxExpiry, 72*time.Hour)
	def(&o.PollInterval, 5*time.Second)
	def(&o.SlowDownStep, 5*time.Second)
	def(&o.MaxLongPoll, 30*time.Second)
	def(&o.EnrollmentTTL, 24*time.Hour)
	def(&o.ReportHold, 24*time.Hour)
	if o.MaxPendingPerUser <= 0 {
		o.MaxPendingPerUser = 20
	}
	if o.MaxRequestsPerMinute <= 0 {
		o.MaxRequestsPerMinute = 30
	}
	if o.DetailTypes == nil {
		o.DetailTypes = &DetailTypes{}
	}
	if o.HTTPClient == nil {
		o.HTTPClient = &http.Client{Timeout: 10 * time.Second}
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
}

// Service runs the use cases against a store.
type Service struct {
	store  domain.Store
	signer Signer
	clock  domain.Clock
	opts   Options
	log    *slog.Logger

	polls   *pollTracker
	clients clientCache
	vapid   struct {
		mu              sync.Mutex
		public, private string
	}
	hub  *Hub
	jwks *clientKeySets
	obs  Observer
}

// Observer is told about every state change that matters to the outside: the server uses it for
// metrics and to wake the outbox worker. It must not block.
type Observer interface {
	RequestChanged(r domain.Request)
	OutboxEnqueued()
}

type nopObserver struct{}

func (nopObserver) RequestChanged(domain.Request) {}
func (nopObserver) OutboxEnqueued()               {}

// New returns a Service. obs may be nil.
func New(store domain.Store, signer Signer, clock domain.Clock, opts Options, obs Observer) *Service {
	opts.applyDefaults()
	if obs == nil {
		obs = nopObserver{}
	}
	return &Service{
		store:  store,
		signer: signer,
		clock:  clock,
		opts:   opts,
		log:    opts.Logger,
		polls:  newPollTracker(),
		hub:    NewHub(),
		jwks:   newClientKeySets(opts.HTTPClient, clock),
		obs:    obs,
	}
}

// Issuer returns the issuer identifier.
func (s *Service) Issuer() string { return s.opts.Issuer }

// Options returns the effective options (defaults applied).
func (s *Service) Options() Options { return s.opts }

// Hub returns the in-process wake-up hub that long polls wait on.
func (s *Service) Hub() *Hub { return s.hub }

// Store returns the store, for the CLI's administrative commands.
func (s *Service) Store() domain.Store { return s.store }

// now is the service's notion of the current time, truncated to microseconds so that what is stored
// and what is compared agree on every backend.
func (s *Service) now() time.Time { return s.clock.Now().UTC().Truncate(time.Microsecond) }
