package main

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/countersign/countersign/internal/config"
)

func newServeCommand() *cobra.Command {
	var configPath string
	cmd := &cobra.Command{
		Use:   "serve --config FILE",
		Short: "Run the authorization server",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := loadConfig(configPath)
			if err != nil {
				return err
			}
			a, err := newApp(cmd.Context(), cfg, newLogger(cfg, cmd.ErrOrStderr()))
			if err != nil {
				return err
			}
			defer a.Close()
			return a.serve(cmd.Context(), nil)
		},
	}
	cmd.Flags().StringVar(&configPath, "config", "", "config file (YAML)")
	return cmd
}

func newDevCommand() *cobra.Command {
	var dataDir, listen string
	cmd := &cobra.Command{
		Use:   "dev",
		Short: "Run a zero-config development server (SQLite in ./countersign-data, demo user and client)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := os.MkdirAll(dataDir, 0o700); err != nil {
				return err
			}
			secret, err := devClientSecret(dataDir)
			if err != nil {
				return err
			}
			// Remembered so that admin commands run with --data build the same issuer (and so the
			// same invitation links) as this server.
			if err := os.WriteFile(filepath.Join(dataDir, "dev-listen"), []byte(listen+"\n"), 0o600); err != nil {
				return err
			}
			cfg := config.Dev(dataDir, listen)
			cfg.Clients[0].ClientSecret = secret
			// Short polls make the demo feel instant; production keeps CIBA's 5 s default.
			cfg.CIBA.PollInterval = config.Duration{Duration: time.Second}
			if err := cfg.Validate(); err != nil {
				return err
			}
			ctx := cmd.Context()
			a, err := newApp(ctx, cfg, newLogger(cfg, cmd.ErrOrStderr()))
			if err != nil {
				return err
			}
			defer a.Close()
			return a.serve(ctx, func(string) {
				if err := printDevNextSteps(ctx, cmd.OutOrStdout(), a, secret); err != nil {
					a.log.Error("print next steps", "error", err)
				}
			})
		},
	}
	cmd.Flags().StringVar(&dataDir, "data", "./countersign-data", "data directory (SQLite database and keys)")
	cmd.Flags().StringVar(&listen, "listen", "127.0.0.1:8080", "address to listen on")
	return cmd
}

// devClientSecret returns the demo client's secret, generated on first start and kept in the data
// directory so that it survives restarts.
func devClientSecret(dataDir string) (string, error) {
	path := filepath.Join(dataDir, "dev-client-secret")
	if b, err := os.ReadFile(path); err == nil {
		return strings.TrimSpace(string(b)), nil
	} else if !errors.Is(err, os.ErrNotExist) {
		return "", err
	}
	b := make([]byte, 24)
	_, _ = rand.Read(b)
	secret := base64.RawURLEncoding.EncodeToString(b)
	if err := os.WriteFile(path, []byte(secret+"\n"), 0o600); err != nil {
		return "", err
	}
	return secret, nil
}

func printDevNextSteps(ctx context.Context, w io.Writer, a *app, secret string) error {
	cfg := a.cfg
	user := cfg.Users[0]
	client := cfg.Clients[0]
	fmt.Fprintf(w, "\nCountersign dev server is running.\n\n")
	fmt.Fprintf(w, "  issuer      %s\n", cfg.Issuer)
	fmt.Fprintf(w, "  discovery   %s.well-known/openid-configuration\n", cfg.Issuer)
	fmt.Fprintf(w, "  client      %s  secret %s\n", client.ClientID, secret)
	fmt.Fprintf(w, "  user        %s <%s>\n", user.Sub, user.Email)
	fmt.Fprintf(w, "  data        %s (SQLite)\n\n", cfg.DataDir)

	devices, err := a.store.CountActiveDevices(ctx, user.Sub)
	if err != nil {
		return err
	}
	if devices == 0 {
		url, expires, err := a.svc.Invite(ctx, user.Sub)
		if err != nil {
			return err
		}
		fmt.Fprintf(w, "1. Enroll %s's authenticator (link valid until %s):\n", user.Sub, expires.Local().Format(time.DateTime))
		printQR(w, url)
		fmt.Fprintf(w, "   %s\n\n", url)
		fmt.Fprintf(w, "   from a terminal:  countersign device enroll '%s' --key %s.key\n\n", url, user.Sub)
	} else {
		fmt.Fprintf(w, "1. %s already has %d enrolled device(s); invite another with:\n   countersign users invite %s --data %s\n\n", user.Sub, devices, user.Sub, cfg.DataDir)
	}
	base := strings.TrimSuffix(cfg.Issuer, "/")
	fmt.Fprintf(w, "2. Ask for approval (as the agent):\n")
	fmt.Fprintf(w, "   curl -s -u %s:%s %s/bc-authorize -d scope=openid -d login_hint=%s \\\n", client.ClientID, secret, base, user.Sub)
	fmt.Fprintf(w, "     --data-urlencode 'binding_message=Buy 10 NVDA' \\\n")
	fmt.Fprintf(w, "     --data-urlencode 'authorization_details=[{\"type\":\"trade_order\",\"symbol\":\"NVDA\",\"side\":\"BUY\",\"quantity\":10}]'\n\n")
	fmt.Fprintf(w, "3. Approve it (as %s):  countersign device approve --key %s.key --latest\n\n", user.Sub, user.Sub)
	fmt.Fprintf(w, "4. Collect the token:\n")
	fmt.Fprintf(w, "   curl -s -u %s:%s %s/oauth/token -d grant_type=urn:openid:params:grant-type:ciba -d auth_req_id=AUTH_REQ_ID\n\n", client.ClientID, secret, base)
	return nil
}
