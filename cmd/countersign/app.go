package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/countersign/countersign/internal/authz"
	"github.com/countersign/countersign/internal/config"
	"github.com/countersign/countersign/internal/domain"
	"github.com/countersign/countersign/internal/notify"
	"github.com/countersign/countersign/internal/server"
	"github.com/countersign/countersign/internal/store/sqlstore"
	"github.com/countersign/countersign/internal/token"
	"github.com/countersign/countersign/oauth"
)

// loadConfig reads and validates a config file.
func loadConfig(path string) (*config.Config, error) {
	if path == "" {
		return nil, errors.New("--config is required")
	}
	cfg, err := config.Load(path)
	if err != nil {
		return nil, err
	}
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return cfg, nil
}

// openStore opens the configured database, creating the data directory if needed.
func openStore(ctx context.Context, cfg *config.Config) (domain.Store, error) {
	switch cfg.Storage.Driver {
	case "", "sqlite":
		if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
			return nil, fmt.Errorf("create data directory: %w", err)
		}
		return sqlstore.OpenSQLite(ctx, cfg.DBPath(), sqlstore.SQLiteOptions{Synchronous: cfg.Storage.SQLiteSynchronous})
	default:
		return nil, fmt.Errorf("storage driver %q is not available in this build (only sqlite)", cfg.Storage.Driver)
	}
}

// detailTypes compiles the config's authorization_details types.
func detailTypes(cfg *config.Config) (*authz.DetailTypes, error) {
	defs := make([]authz.DetailTypeConfig, 0, len(cfg.AuthorizationDetailsTypes))
	for name, t := range cfg.AuthorizationDetailsTypes {
		defs = append(defs, authz.DetailTypeConfig{Name: name, Description: t.Description, Display: t.Display, Schema: t.Schema,
			RequireNumberMatching: t.RequireNumberMatching, RequireUserVerification: t.RequireUserVerification})
	}
	return authz.NewDetailTypes(defs)
}

// keyAlgorithms are the signing algorithms to keep keys for: ES256 (access tokens), RS256 (the
// default ID token algorithm), and PS256 only when a client asks for it.
func keyAlgorithms(cfg *config.Config) []string {
	algs := []string{token.ES256, token.RS256}
	for _, c := range cfg.Clients {
		if c.IDTokenSignedResponseAlg == token.PS256 && !slices.Contains(algs, token.PS256) {
			algs = append(algs, token.PS256)
		}
	}
	return algs
}

// serviceOptions maps the config to the use cases' options.
func serviceOptions(cfg *config.Config, dt *authz.DetailTypes, log *slog.Logger) authz.Options {
	return authz.Options{
		Issuer:               cfg.Issuer,
		AccessTokenTTL:       cfg.Tokens.AccessTokenTTL.Duration,
		IDTokenTTL:           cfg.Tokens.IDTokenTTL.Duration,
		RefreshTokenTTL:      cfg.Tokens.RefreshTokenTTL.Duration,
		DefaultExpiry:        cfg.CIBA.DefaultExpiry.Duration,
		MaxExpiry:            cfg.CIBA.MaxExpiry.Duration,
		PollInterval:         cfg.CIBA.PollInterval.Duration,
		SlowDownStep:         cfg.CIBA.SlowDownStep.Duration,
		MaxLongPoll:          cfg.CIBA.MaxLongPoll.Duration,
		MaxPendingPerUser:    cfg.Limits.MaxPendingPerUser,
		MaxRequestsPerMinute: cfg.Limits.MaxRequestsPerMinutePerUser,
		EnrollmentTTL:        cfg.Limits.EnrollmentTTL.Duration,
		ReportHold:           cfg.Limits.ReportHold.Duration,
		ReminderBefore:       cfg.Notifications.ReminderBefore.Duration,
		DefaultChannels:      cfg.Notifications.DefaultChannels,
		Channels: map[string]bool{
			"webpush":          true,
			"email":            cfg.Notifications.Email != nil,
			"sms":              cfg.Notifications.SMS != nil,
			"webhook":          cfg.Notifications.Webhook != nil,
			"operator_webhook": cfg.Notifications.OperatorWebhook != nil,
		},
		RequireNumberMatching:   clientFlags(cfg, func(c config.Client) bool { return c.RequireNumberMatching }),
		RequireUserVerification: clientFlags(cfg, func(c config.Client) bool { return c.RequireUserVerification }),
		DetailTypes:             dt,
		Logger:                  log,
	}
}

func clientFlags(cfg *config.Config, flag func(config.Client) bool) map[string]bool {
	out := map[string]bool{}
	for _, c := range cfg.Clients {
		if flag(c) {
			out[c.ClientID] = true
		}
	}
	return out
}

// channels builds the configured notification channels, by name.
func (a *app) channels(ctx context.Context) (map[string]notify.Channel, error) {
	n := a.cfg.Notifications
	public, private, err := a.svc.VAPIDKeys(ctx)
	if err != nil {
		return nil, fmt.Errorf("VAPID keys: %w", err)
	}
	out := map[string]notify.Channel{}
	if out["webpush"], err = notify.NewWebPush(notify.WebPushConfig{
		VAPIDPublicKey: public, VAPIDPrivateKey: private, Subscriber: n.WebPush.Subscriber,
		OnGone: func(ctx context.Context, sub notify.PushSubscription) { a.svc.ForgetPushSubscription(ctx, sub.ID) },
	}); err != nil {
		return nil, fmt.Errorf("webpush: %w", err)
	}
	if e := n.Email; e != nil {
		if out["email"], err = notify.NewEmail(notify.EmailConfig{Host: e.Host, Port: e.Port, Security: e.Security,
			Username: e.Username, Password: e.Password, From: e.From}); err != nil {
			return nil, fmt.Errorf("email: %w", err)
		}
	}
	if s := n.SMS; s != nil {
		if out["sms"], err = notify.NewSMS(notify.SMSConfig{BaseURL: s.BaseURL, AccountSID: s.AccountSID, AuthToken: s.AuthToken, From: s.From}); err != nil {
			return nil, fmt.Errorf("sms: %w", err)
		}
	}
	if w := n.Webhook; w != nil {
		if out["webhook"], err = notify.NewWebhook(notify.WebhookConfig{URL: w.URL, Secret: w.Secret}); err != nil {
			return nil, fmt.Errorf("webhook: %w", err)
		}
	}
	return out, nil
}

// domainClient maps a configured client to the stored one.
func domainClient(c config.Client, now time.Time) domain.Client {
	out := domain.Client{
		ID: c.ClientID, Name: c.Name, AuthMethod: c.TokenEndpointAuthMethod, JWKS: c.JWKS, JWKSURI: c.JWKSURI,
		GrantTypes:                []string{oauth.GrantTypeCIBA},
		DeliveryMode:              domain.DeliveryMode(c.BackchannelTokenDeliveryMode),
		NotificationEndpoint:      c.BackchannelClientNotificationEndpoint,
		RequestSigningAlg:         c.BackchannelAuthenticationRequestSigningAlg,
		UserCodeParameter:         c.BackchannelUserCodeParameter,
		AuthorizationDetailsTypes: c.AuthorizationDetailsTypes,
		Scopes:                    c.Scopes,
		Audiences:                 c.Audiences,
		IDTokenSigningAlg:         c.IDTokenSignedResponseAlg,
		RefreshTokens:             c.RefreshTokens,
		AccessTokenTTL:            c.AccessTokenTTL.Duration,
		ExpiredAsAccessDenied:     c.ExpiredAsAccessDenied,
		CreatedAt:                 now,
		UpdatedAt:                 now,
	}
	if c.ClientSecret != "" {
		out.SecretHash = authz.HashClientSecret(c.ClientSecret)
	}
	if c.RefreshTokens {
		out.GrantTypes = append(out.GrantTypes, oauth.GrantTypeRefreshToken)
	}
	return out
}

// syncClients makes the stored clients exactly the configured ones: the config file is the source of
// truth for clients, so removing a client from it revokes its access at the next start.
func syncClients(ctx context.Context, store domain.Store, cfg *config.Config) error {
	now := time.Now().UTC()
	return store.InTx(ctx, func(tx domain.Store) error {
		existing, err := tx.ListClients(ctx)
		if err != nil {
			return err
		}
		keep := map[string]bool{}
		for _, c := range cfg.Clients {
			dc := domainClient(c, now)
			for _, e := range existing {
				if e.ID == dc.ID {
					dc.CreatedAt = e.CreatedAt
				}
			}
			if err := tx.PutClient(ctx, dc); err != nil {
				return err
			}
			keep[dc.ID] = true
		}
		for _, e := range existing {
			if !keep[e.ID] {
				if err := tx.DeleteClient(ctx, e.ID); err != nil {
					return err
				}
			}
		}
		return nil
	})
}

// syncUsers stores the configured users. With update false (CLI commands) it only adds missing
// users; serve updates them too. Users added with `users add` are never removed.
func syncUsers(ctx context.Context, svc *authz.Service, cfg *config.Config, update bool) error {
	for _, u := range cfg.Users {
		existing, err := svc.Store().GetUser(ctx, u.Sub)
		switch {
		case errors.Is(err, domain.ErrNotFound):
		case err != nil:
			return err
		case !update:
			continue
		case existing.Email == u.Email && existing.Name == u.Name && existing.Phone == u.Phone &&
			slices.Equal(existing.Channels, u.Channels) && u.UserCode == "" && existing.UserCodeHash == "":
			continue
		}
		if err := svc.AddUser(ctx, domain.User{Subject: u.Sub, Email: u.Email, Name: u.Name, Phone: u.Phone, Channels: u.Channels}, u.UserCode); err != nil {
			return fmt.Errorf("user %s: %w", u.Sub, err)
		}
	}
	return nil
}

// app is a running Countersign: store, keys, use cases, HTTP server and background workers.
type app struct {
	cfg     *config.Config
	log     *slog.Logger
	store   domain.Store
	keys    *token.Keyring
	svc     *authz.Service
	server  *server.Server
	worker  *notify.Worker
	metrics *server.Metrics
}

// newLogger builds the server's logger from the config.
func newLogger(cfg *config.Config, w io.Writer) *slog.Logger {
	var level slog.Level
	_ = level.UnmarshalText([]byte(cfg.Log.Level))
	opts := &slog.HandlerOptions{Level: level}
	if cfg.Log.Format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// openAdmin opens what a CLI command needs: store, keys and use cases, without serving.
func openAdmin(ctx context.Context, cfg *config.Config, log *slog.Logger) (*app, error) {
	store, err := openStore(ctx, cfg)
	if err != nil {
		return nil, err
	}
	dt, err := detailTypes(cfg)
	if err != nil {
		store.Close()
		return nil, err
	}
	a := &app{cfg: cfg, log: log, store: store}
	a.keys = token.NewKeyring(store, domain.SystemClock{}, token.Options{Algorithms: keyAlgorithms(cfg)})
	a.metrics = server.NewMetrics(prometheus.NewRegistry())
	a.svc = authz.New(store, a.keys, domain.SystemClock{}, serviceOptions(cfg, dt, log), a.metrics)
	if err := syncUsers(ctx, a.svc, cfg, false); err != nil {
		store.Close()
		return nil, err
	}
	return a, nil
}

// newApp builds the whole server from a validated config.
func newApp(ctx context.Context, cfg *config.Config, log *slog.Logger) (*app, error) {
	a, err := openAdmin(ctx, cfg, log)
	if err != nil {
		return nil, err
	}
	fail := func(err error) (*app, error) { a.store.Close(); return nil, err }
	if err := syncClients(ctx, a.store, cfg); err != nil {
		return fail(fmt.Errorf("store clients: %w", err))
	}
	if err := syncUsers(ctx, a.svc, cfg, true); err != nil {
		return fail(fmt.Errorf("store users: %w", err))
	}
	if err := a.keys.Init(ctx); err != nil {
		return fail(fmt.Errorf("signing keys: %w", err))
	}
	channels, err := a.channels(ctx)
	if err != nil {
		return fail(err)
	}
	senders := map[string]notify.Sender{
		notify.KindCIBAPing: notify.NewCIBACallback(nil),
		notify.KindCIBAPush: notify.NewCIBACallback(nil),
		authz.OutboxNotify:  a.svc.NotificationSender(channels),
	}
	if w := cfg.Notifications.OperatorWebhook; w != nil {
		hook, err := notify.NewWebhook(notify.WebhookConfig{URL: w.URL, Secret: w.Secret})
		if err != nil {
			return fail(fmt.Errorf("operator_webhook: %w", err))
		}
		senders[authz.OutboxReport] = a.svc.ReportSender(hook)
	}
	a.worker = notify.NewWorker(a.store, domain.SystemClock{}, senders, notify.WorkerOptions{}, log)
	a.metrics.OnOutbox = a.worker.Kick
	if a.server, err = server.New(a.svc, a.keys, server.Options{Logger: log, Metrics: a.metrics}); err != nil {
		return fail(err)
	}
	return a, nil
}

func (a *app) Close() error { return a.store.Close() }

// serve runs the HTTP server and the background workers until ctx ends. ready, if not nil, receives
// the bound address once the server listens.
func (a *app) serve(ctx context.Context, ready func(addr string)) error {
	ln, err := net.Listen("tcp", a.cfg.Listen)
	if err != nil {
		return err
	}
	srv := &http.Server{
		Handler:           a.server,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		// Long polls are held up to max_long_poll; leave room to answer after it.
		WriteTimeout: a.cfg.CIBA.MaxLongPoll.Duration + 30*time.Second,
		IdleTimeout:  2 * time.Minute,
		ErrorLog:     slog.NewLogLogger(a.log.Handler(), slog.LevelWarn),
	}
	if a.cfg.TLS != nil {
		cert, err := tls.LoadX509KeyPair(a.cfg.TLS.CertFile, a.cfg.TLS.KeyFile)
		if err != nil {
			ln.Close()
			return fmt.Errorf("tls: %w", err)
		}
		srv.TLSConfig = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
		ln = tls.NewListener(ln, srv.TLSConfig)
	}
	workCtx, stopWork := context.WithCancel(context.Background())
	defer stopWork()
	go a.worker.Run(workCtx)
	go a.sweep(workCtx)

	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	a.log.Info("countersign listening", "addr", ln.Addr().String(), "issuer", a.cfg.Issuer, "tls", a.cfg.TLS != nil)
	if ready != nil {
		ready(ln.Addr().String())
	}
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	shutdown, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err = srv.Shutdown(shutdown)
	stopWork()
	if err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	a.log.Info("countersign stopped")
	return nil
}

// sweep expires overdue requests and purges old records every few seconds.
func (a *app) sweep(ctx context.Context) {
	t := time.NewTicker(5 * time.Second)
	defer t.Stop()
	for {
		if err := a.svc.Sweep(ctx); err != nil && ctx.Err() == nil {
			a.log.Error("sweep", "error", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// isLoopbackListen reports whether addr binds only loopback.
func isLoopbackListen(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
