package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/countersign/countersign/internal/authenticator"
	"github.com/countersign/countersign/internal/authz"
	"github.com/countersign/countersign/internal/domain"
)

func newDeviceCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "device",
		Short: "The terminal authenticator: enroll, list pending requests, approve or deny them",
	}
	cmd.AddCommand(newDeviceEnroll(), newDeviceList(), newDeviceDecide(domain.DecisionApprove), newDeviceDecide(domain.DecisionDeny))
	return cmd
}

func newDeviceEnroll() *cobra.Command {
	var keyPath, name string
	cmd := &cobra.Command{
		Use:   "enroll URL --key FILE",
		Short: "Generate a device key (saved with mode 0600) and enroll it with an invitation URL",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if keyPath == "" {
				return errors.New("--key is required")
			}
			// Check before spending the one-time code.
			if _, err := os.Stat(keyPath); err == nil {
				return fmt.Errorf("%s already exists; choose another --key file", keyPath)
			}
			if name == "" {
				host, _ := os.Hostname()
				name = "terminal on " + host
			}
			dev, err := authenticator.Enroll(cmd.Context(), nil, args[0], name)
			if err != nil {
				return fmt.Errorf("enroll: %w", err)
			}
			if err := dev.Save(keyPath); err != nil {
				return fmt.Errorf("the device was enrolled but its key could not be saved: %w", err)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "enrolled device %s for %s at %s; key saved in %s\n", dev.ID(), dev.Subject(), dev.Issuer(), keyPath)
			return nil
		},
	}
	cmd.Flags().StringVar(&keyPath, "key", "", "file to create for the device key")
	cmd.Flags().StringVar(&name, "name", "", "device name shown to the user (default: terminal on HOSTNAME)")
	return cmd
}

func newDeviceList() *cobra.Command {
	var keyPath string
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "list --key FILE",
		Short: "List pending requests, rendered",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			dev, err := loadDevice(keyPath)
			if err != nil {
				return err
			}
			pending, err := dev.Pending(cmd.Context())
			if err != nil {
				return err
			}
			if asJSON {
				return printJSON(cmd.OutOrStdout(), pending)
			}
			w := cmd.OutOrStdout()
			if len(pending) == 0 {
				fmt.Fprintln(w, "no pending requests")
				return nil
			}
			for _, v := range pending {
				printRequest(w, v)
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&keyPath, "key", "", "device key file")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

func loadDevice(keyPath string) (*authenticator.Device, error) {
	if keyPath == "" {
		return nil, errors.New("--key is required")
	}
	return authenticator.Load(keyPath, nil)
}

// printRequest shows everything the user decides on: who asks, the binding message, each detail's
// sentence and every one of its fields.
func printRequest(w io.Writer, v authz.RequestView) {
	fmt.Fprintf(w, "%s  from %s, expires in %s\n", v.ID, v.Client.Name, (time.Duration(v.ExpiresIn) * time.Second).String())
	if v.BindingMessage != "" {
		fmt.Fprintf(w, "  message: %s\n", v.BindingMessage)
	}
	for _, d := range v.Rendered {
		fmt.Fprintf(w, "  %s: %s\n", d.Type, d.Text)
		tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		for _, f := range d.Fields {
			fmt.Fprintf(tw, "      %s\t%s\n", f.Path, f.Value)
		}
		tw.Flush()
	}
	if len(v.Audience) > 0 {
		fmt.Fprintf(w, "  for: %s\n", strings.Join(v.Audience, ", "))
	}
	if len(v.VerificationChoices) > 0 {
		fmt.Fprintf(w, "  number matching: approve with --code and the number the agent shows (%s)\n", strings.Join(v.VerificationChoices, ", "))
	}
	if v.RequireUserVerification {
		fmt.Fprintln(w, "  needs a passkey: approve it in the web authenticator")
	}
	fmt.Fprintf(w, "  scope: %s\n", strings.Join(v.Scope, " "))
}

func newDeviceDecide(decision domain.Decision) *cobra.Command {
	var keyPath, binding, id, code string
	var latest, asJSON, report bool
	var wait time.Duration
	verb := string(decision)
	cmd := &cobra.Command{
		Use:   verb + " --key FILE (--binding-message TEXT | --id ID | --latest) [--wait 30s]",
		Short: strings.ToUpper(verb[:1]) + verb[1:] + " a pending request, signed with the device key",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			n := 0
			for _, set := range []bool{binding != "", id != "", latest} {
				if set {
					n++
				}
			}
			if n != 1 {
				return errors.New("choose the request with exactly one of --binding-message, --id and --latest")
			}
			dev, err := loadDevice(keyPath)
			if err != nil {
				return err
			}
			v, err := findRequest(cmd.Context(), dev, binding, id, latest, wait)
			if err != nil {
				return err
			}
			if report && decision != domain.DecisionDeny {
				return errors.New("--report goes with deny")
			}
			if len(v.VerificationChoices) > 0 && code == "" && decision == domain.DecisionApprove {
				return fmt.Errorf("this request needs number matching: pass --code with the number the agent shows (one of %s)", strings.Join(v.VerificationChoices, ", "))
			}
			out, err := dev.DecideWith(cmd.Context(), v, decision, authenticator.DecisionOptions{VerificationCode: code, Report: report})
			if err != nil {
				return fmt.Errorf("%s: %w", verb, err)
			}
			if asJSON {
				return printJSON(cmd.OutOrStdout(), out)
			}
			summary := out.BindingMessage
			if len(out.Rendered) > 0 {
				summary = out.Rendered[0].Text
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s %s from %s: %s\n", pastTense(decision), out.ID, out.Client.Name, summary)
			return nil
		},
	}
	cmd.Flags().StringVar(&keyPath, "key", "", "device key file")
	cmd.Flags().StringVar(&binding, "binding-message", "", "the request whose binding message is exactly TEXT")
	cmd.Flags().StringVar(&id, "id", "", "the request with this ID")
	cmd.Flags().BoolVar(&latest, "latest", false, "the most recent pending request")
	cmd.Flags().DurationVar(&wait, "wait", 0, "wait up to this long for a matching request to appear")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the decided request as JSON")
	if decision == domain.DecisionApprove {
		cmd.Flags().StringVar(&code, "code", "", "the two-digit number the agent shows, for requests with number matching")
	} else {
		cmd.Flags().BoolVar(&report, "report", false, "report the request as not yours: the client's further requests to you are held")
	}
	return cmd
}

func pastTense(d domain.Decision) string {
	if d == domain.DecisionApprove {
		return "approved"
	}
	return "denied"
}

// devicePollEvery is how often --wait looks for a matching request.
const devicePollEvery = 200 * time.Millisecond

// findRequest returns the one pending request that matches, waiting for it up to wait.
func findRequest(ctx context.Context, dev *authenticator.Device, binding, id string, latest bool, wait time.Duration) (authz.RequestView, error) {
	deadline := time.Now().Add(wait)
	for {
		var match []authz.RequestView
		if id != "" {
			v, err := dev.Get(ctx, id)
			var apiErr *authenticator.APIError
			switch {
			case err == nil && v.Status == string(domain.StatusPending):
				match = append(match, v)
			case err == nil:
				return v, fmt.Errorf("request %s is %s, not pending", id, v.Status)
			case errors.As(err, &apiErr) && apiErr.Status == 404:
			default:
				return v, err
			}
		} else {
			pending, err := dev.Pending(ctx)
			if err != nil {
				return authz.RequestView{}, err
			}
			for _, v := range pending {
				if latest || v.BindingMessage == binding {
					match = append(match, v)
				}
			}
			if latest && len(match) > 0 {
				match = match[len(match)-1:] // the list is oldest first
			}
		}
		switch {
		case len(match) == 1:
			return match[0], nil
		case len(match) > 1:
			return authz.RequestView{}, fmt.Errorf("%d pending requests have that binding message; choose one with --id", len(match))
		}
		if !time.Now().Before(deadline) {
			return authz.RequestView{}, errors.New("no matching pending request")
		}
		select {
		case <-ctx.Done():
			return authz.RequestView{}, ctx.Err()
		case <-time.After(devicePollEvery):
		}
	}
}
