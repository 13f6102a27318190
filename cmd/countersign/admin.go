package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/mdp/qrterminal/v3"
	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/countersign/countersign/internal/config"
	"github.com/countersign/countersign/internal/domain"
)

// adminFlags are the flags of commands that open the server's database: --config, or --data for a
// `countersign dev` data directory.
type adminFlags struct {
	config string
	data   string
	json   bool
}

func (f *adminFlags) register(cmd *cobra.Command, withJSON bool) {
	cmd.Flags().StringVar(&f.config, "config", "", "config file (YAML)")
	cmd.Flags().StringVar(&f.data, "data", "", "data directory of a `countersign dev` server (instead of --config)")
	if withJSON {
		cmd.Flags().BoolVar(&f.json, "json", false, "print JSON")
	}
}

// open loads the config (or the dev config) and opens the store and use cases.
func (f *adminFlags) open(cmd *cobra.Command) (*app, error) {
	var cfg *config.Config
	switch {
	case f.config != "" && f.data != "":
		return nil, fmt.Errorf("use either --config or --data")
	case f.data != "":
		secret, err := devClientSecret(f.data)
		if err != nil {
			return nil, err
		}
		listen := config.DevListen
		if b, err := os.ReadFile(filepath.Join(f.data, "dev-listen")); err == nil {
			listen = strings.TrimSpace(string(b))
		}
		cfg = config.Dev(f.data, listen)
		cfg.Clients[0].ClientSecret = secret
	default:
		var err error
		if cfg, err = loadConfig(f.config); err != nil {
			return nil, err
		}
	}
	return openAdmin(cmd.Context(), cfg, newLogger(cfg, io.Discard))
}

// run wraps a command body: it opens the store and use cases for it and closes them after.
func (f *adminFlags) run(fn func(cmd *cobra.Command, a *app, args []string) error) func(*cobra.Command, []string) error {
	return func(cmd *cobra.Command, args []string) error {
		a, err := f.open(cmd)
		if err != nil {
			return err
		}
		defer a.Close()
		return fn(cmd, a, args)
	}
}

func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// isTerminal reports whether w is a terminal (QR codes and progress lines only go there).
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

func printQR(w io.Writer, text string) {
	if !isTerminal(w) {
		return
	}
	qrterminal.GenerateWithConfig(text, qrterminal.Config{
		Level: qrterminal.L, Writer: w, HalfBlocks: true, QuietZone: 2,
		BlackChar: qrterminal.BLACK_BLACK, WhiteBlackChar: qrterminal.WHITE_BLACK,
		WhiteChar: qrterminal.WHITE_WHITE, BlackWhiteChar: qrterminal.BLACK_WHITE,
	})
}

func newUsersCommand() *cobra.Command {
	cmd := &cobra.Command{Use: "users", Short: "Manage the people who approve requests"}

	var addFlags adminFlags
	var email, name, userCode string
	add := &cobra.Command{
		Use:   "add SUB",
		Short: "Add or update a user",
		Args:  cobra.ExactArgs(1),
		RunE: addFlags.run(func(cmd *cobra.Command, a *app, args []string) error {
			if err := a.svc.AddUser(cmd.Context(), domain.User{Subject: args[0], Email: email, Name: name}, userCode); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "user %s saved\n", args[0])
			return nil
		}),
	}
	addFlags.register(add, false)
	add.Flags().StringVar(&email, "email", "", "email address (a login_hint may use it)")
	add.Flags().StringVar(&name, "name", "", "display name")
	add.Flags().StringVar(&userCode, "user-code", "", "optional CIBA user_code the user must give to agents")

	var listFlags adminFlags
	list := &cobra.Command{
		Use:   "list",
		Short: "List users",
		Args:  cobra.NoArgs,
		RunE: listFlags.run(func(cmd *cobra.Command, a *app, _ []string) error {
			users, err := a.store.ListUsers(cmd.Context())
			if err != nil {
				return err
			}
			type row struct {
				Subject string `json:"sub"`
				Email   string `json:"email,omitempty"`
				Name    string `json:"name,omitempty"`
				Devices int    `json:"devices"`
			}
			rows := make([]row, 0, len(users))
			for _, u := range users {
				n, err := a.store.CountActiveDevices(cmd.Context(), u.Subject)
				if err != nil {
					return err
				}
				rows = append(rows, row{u.Subject, u.Email, u.Name, n})
			}
			if listFlags.json {
				return printJSON(cmd.OutOrStdout(), rows)
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "SUB\tEMAIL\tNAME\tDEVICES")
			for _, r := range rows {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%d\n", r.Subject, r.Email, r.Name, r.Devices)
			}
			return tw.Flush()
		}),
	}
	listFlags.register(list, true)

	var inviteFlags adminFlags
	invite := &cobra.Command{
		Use:   "invite SUB",
		Short: "Create a one-time enrollment URL for a user's authenticator (printed as the last line)",
		Args:  cobra.ExactArgs(1),
		RunE: inviteFlags.run(func(cmd *cobra.Command, a *app, args []string) error {
			url, expires, err := a.svc.Invite(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			w := cmd.OutOrStdout()
			fmt.Fprintf(w, "Enrollment link for %s, valid once until %s.\n", args[0], expires.Local().Format(time.RFC1123))
			fmt.Fprintf(w, "Open it on the device, or run: countersign device enroll URL --key %s.key\n", args[0])
			printQR(w, url)
			fmt.Fprintln(w, url)
			return nil
		}),
	}
	inviteFlags.register(invite, false)

	cmd.AddCommand(add, list, invite)
	return cmd
}

func newKeysCommand() *cobra.Command {
	cmd := &cobra.Command{Use: "keys", Short: "Manage the server's signing keys"}
	var rotateFlags adminFlags
	rotate := &cobra.Command{
		Use:   "rotate",
		Short: "Rotate signing keys: the published next key starts signing, and a new next key is published",
		Long: "Each algorithm keeps a \"next\" key that is published in the JWKS before it signs anything, so that\n" +
			"verifiers already know it when it takes over. rotate promotes it, retires the active key (it stays\n" +
			"published until the tokens it signed expire) and publishes a new next key. Running servers pick the\n" +
			"change up within 30 seconds.",
		Args: cobra.NoArgs,
		RunE: rotateFlags.run(func(cmd *cobra.Command, a *app, _ []string) error {
			if err := a.keys.Init(cmd.Context()); err != nil {
				return err
			}
			changed, err := a.keys.Rotate(cmd.Context())
			if err != nil {
				return err
			}
			now := time.Now().UTC()
			for _, k := range changed {
				_ = a.store.AppendAudit(cmd.Context(), domain.AuditEvent{Time: now, Type: domain.AuditKeyRotated,
					Detail: mustJSONDetail(map[string]string{"kid": k.ID, "alg": k.Algorithm, "status": string(k.Status)})})
			}
			if rotateFlags.json {
				return printJSON(cmd.OutOrStdout(), changed)
			}
			for _, k := range changed {
				fmt.Fprintf(cmd.OutOrStdout(), "%s %s is now %s\n", k.Algorithm, k.ID, k.Status)
			}
			return nil
		}),
	}
	rotateFlags.register(rotate, true)

	var listFlags adminFlags
	list := &cobra.Command{
		Use:   "list",
		Short: "List signing keys",
		Args:  cobra.NoArgs,
		RunE: listFlags.run(func(cmd *cobra.Command, a *app, _ []string) error {
			keys, err := a.keys.List(cmd.Context())
			if err != nil {
				return err
			}
			if listFlags.json {
				return printJSON(cmd.OutOrStdout(), keys)
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "KID\tALG\tSTATUS\tCREATED")
			for _, k := range keys {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", k.ID, k.Algorithm, k.Status, k.CreatedAt.Format(time.RFC3339))
			}
			return tw.Flush()
		}),
	}
	listFlags.register(list, true)
	cmd.AddCommand(rotate, list)
	return cmd
}

func mustJSONDetail(v any) []byte {
	b, _ := json.Marshal(v)
	return b
}

func newAuditCommand() *cobra.Command {
	cmd := &cobra.Command{Use: "audit", Short: "Read the audit log"}
	var f adminFlags
	var filter domain.AuditFilter
	list := &cobra.Command{
		Use:   "list",
		Short: "List audit events, newest first",
		Args:  cobra.NoArgs,
		RunE: f.run(func(cmd *cobra.Command, a *app, _ []string) error {
			events, err := a.store.ListAudit(cmd.Context(), filter)
			if err != nil {
				return err
			}
			if f.json {
				return printJSON(cmd.OutOrStdout(), events)
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "TIME\tEVENT\tUSER\tCLIENT\tREQUEST\tDEVICE\tDETAIL")
			for _, e := range events {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", e.Time.Local().Format(time.DateTime), e.Type,
					dash(e.Subject), dash(e.ClientID), dash(e.RequestID), dash(e.DeviceID), strings.TrimSpace(string(e.Detail)))
			}
			return tw.Flush()
		}),
	}
	f.register(list, true)
	list.Flags().StringVar(&filter.Subject, "user", "", "only events about this user")
	list.Flags().StringVar(&filter.ClientID, "client", "", "only events about this client")
	list.Flags().StringVar(&filter.RequestID, "request", "", "only events about this request")
	list.Flags().StringVar(&filter.Type, "type", "", "only events of this type (e.g. request.approved, outbox.dead)")
	list.Flags().IntVar(&filter.Limit, "limit", 50, "most events to show")
	var rf adminFlags
	receipt := &cobra.Command{
		Use:   "receipt REQUEST_ID",
		Short: "Show and verify the device-signed receipt of a decision",
		Long: "Prints what the user was shown, its SHA-256 (RFC 8785 canonical JSON), the device's signature and\n" +
			"public key, and checks them again. Access tokens name the request in their approval claim.\n" +
			"Exits non-zero when the receipt does not verify.",
		Args: cobra.ExactArgs(1),
		RunE: rf.run(func(cmd *cobra.Command, a *app, args []string) error {
			v, err := a.svc.Receipt(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			w := cmd.OutOrStdout()
			if rf.json {
				if err := printJSON(w, v); err != nil {
					return err
				}
			} else {
				shown, _ := json.MarshalIndent(v.Shown, "  ", "  ")
				fmt.Fprintf(w, "request       %s (%s)\n", v.RequestID, v.Status)
				fmt.Fprintf(w, "decision      %s at %s by device %s (%s)\n", v.Decision, v.DecidedAt.Format(time.RFC3339), v.Device.ID, v.Device.Name)
				fmt.Fprintf(w, "shown         %s\n", shown)
				fmt.Fprintf(w, "shown_sha256  %s\n", v.ShownSHA256)
				fmt.Fprintf(w, "signature     %s\n", v.Signature)
				fmt.Fprintf(w, "device key    %s\n", v.DeviceKey)
				if v.Verified {
					fmt.Fprintln(w, "verified      yes: the device signed exactly this content")
				}
			}
			if !v.Verified {
				return fmt.Errorf("receipt of %s does not verify: %s", v.RequestID, v.Problem)
			}
			return nil
		}),
	}
	rf.register(receipt, true)
	cmd.AddCommand(list, receipt)
	return cmd
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
