// Command failoverctl is the operator's tool for a failover bucket: it shows
// what is pending, drains it now, runs the verifier and lists the journal,
// for the failover:// URL the service itself opens.
//
// Usage:
//
//	failoverctl status  [-json] URL
//	failoverctl drain   URL
//	failoverctl verify  [-repair] [-prefix P] [-after KEY] [-max-keys N] [-keys-per-second N] URL
//	failoverctl journal [-json] URL
//
// Every command takes -v, which logs the library's failovers, breaker
// changes and repairs to standard error. Flags may come before or after the
// URL.
//
// The URL is opened as providers.OpenBucket opens it, so every provider
// scheme and every transport and failover parameter works, with one
// exception: failoverctl never starts the background reconciler, so a
// reconcile parameter is checked and ignored. The bucket is closed before
// failoverctl exits.
//
// Exit status: 0 when the command did all it was asked; 1 when it failed or
// left something undone (a side that did not answer, journal entries left
// pending, differences left unrepaired); 2 for a bad command line or URL.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"golang.org/x/term"
)

// Exit statuses.
const (
	exitOK     = 0
	exitFailed = 1 // the command failed, or left work undone
	exitUsage  = 2 // a bad command line or URL
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], &env{
		stdout: os.Stdout,
		stderr: os.Stderr,
		tty:    term.IsTerminal(int(os.Stdout.Fd())),
	})
	stop()
	os.Exit(code)
}

// env is what a command writes to.
type env struct {
	stdout, stderr io.Writer
	// tty reports that stdout is a terminal: progress is then a bar
	// redrawn in place rather than a line at a time.
	tty bool
	// logger is the library's logger: nil (silent) unless -v.
	logger *slog.Logger
}

// command is one subcommand. setup registers its flags on fs and returns
// its body, which runs with the URL argument once the flags are parsed.
type command struct {
	name, summary string
	setup         func(fs *flag.FlagSet) func(ctx context.Context, e *env, url string) error
}

var commands = []command{
	{"status", "show breaker states, pending work and whether each side answers", setupStatus},
	{"drain", "reconcile now, until nothing is pending or no progress is made", setupDrain},
	{"verify", "compare both sides key by key; with -repair, repair what differs", setupVerify},
	{"journal", "list the pending journal entries", setupJournal},
}

// usageError is an error in the command line or the URL: exit status 2.
type usageError struct{ err error }

func (u usageError) Error() string { return u.err.Error() }
func (u usageError) Unwrap() error { return u.err }

func usagef(format string, args ...any) error {
	return usageError{fmt.Errorf(format, args...)}
}

// run runs the command line args and returns the exit status.
func run(ctx context.Context, args []string, e *env) int {
	if len(args) == 0 {
		usage(e.stderr)
		return exitUsage
	}
	switch args[0] {
	case "help", "-h", "-help", "--help":
		usage(e.stdout)
		return exitOK
	}
	var cmd *command
	for i := range commands {
		if commands[i].name == args[0] {
			cmd = &commands[i]
		}
	}
	if cmd == nil {
		fmt.Fprintf(e.stderr, "failoverctl: unknown command %q\n\n", args[0])
		usage(e.stderr)
		return exitUsage
	}
	fs := flag.NewFlagSet("failoverctl "+cmd.name, flag.ContinueOnError)
	fs.SetOutput(e.stderr)
	verbose := fs.Bool("v", false, "log failovers, breaker changes and repairs to standard error")
	body := cmd.setup(fs)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "usage: failoverctl %s [flags] URL\n\n%s.\n\nflags:\n", cmd.name, cmd.summary)
		fs.PrintDefaults()
	}
	pos, err := parseArgs(fs, args[1:])
	switch {
	case errors.Is(err, flag.ErrHelp):
		return exitOK
	case err != nil:
		return exitUsage // the flag package has said what is wrong
	case len(pos) != 1:
		fmt.Fprintf(e.stderr, "failoverctl %s: want one failover:// URL, got %d arguments\n\n", cmd.name, len(pos))
		fs.Usage()
		return exitUsage
	}
	if *verbose {
		e.logger = slog.New(slog.NewTextHandler(e.stderr, nil))
	}
	err = body(ctx, e, pos[0])
	if err == nil {
		return exitOK
	}
	fmt.Fprintf(e.stderr, "failoverctl %s: %v\n", cmd.name, err)
	if errors.As(err, new(usageError)) {
		return exitUsage
	}
	return exitFailed
}

// parseArgs parses args with fs, letting flags and arguments come in any
// order (the flag package alone stops at the first argument), and returns
// the arguments. Everything after "--" is an argument.
func parseArgs(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		rest := fs.Args()
		if used := len(args) - len(rest); used > 0 && args[used-1] == "--" {
			return append(pos, rest...), nil
		}
		if len(rest) == 0 {
			return pos, nil
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
}

func usage(w io.Writer) {
	fmt.Fprint(w, `usage: failoverctl COMMAND [flags] URL

URL is a failover:// URL, as the service opens it, for example
  failover://?primary=s3%3A%2F%2Fassets%3Fregion%3Dus-east-1&secondary=gs%3A%2F%2Fassets-dr

commands:
`)
	for _, c := range commands {
		fmt.Fprintf(w, "  %-8s %s\n", c.name, c.summary)
	}
	fmt.Fprint(w, `
"failoverctl COMMAND -h" lists a command's flags.

exit status: 0 done; 1 failed, or left work undone; 2 bad command line or URL
`)
}
