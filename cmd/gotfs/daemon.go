package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"log/syslog"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/gotfs/gotfs/fusefs"
)

// serviceFlags are the mount's flags for running as a service and for other users.
type serviceFlags struct {
	daemon     bool
	logFile    string
	allowOther bool
	uid, gid   int // -1: the mounting process's
	umask      uint32
}

func (f *serviceFlags) bind(cmd *cobra.Command) {
	fl := cmd.Flags()
	fl.BoolVar(&f.daemon, "daemon", false, "run in the background: return once the mount is ready (the exit status says whether it worked)")
	fl.StringVar(&f.logFile, "log-file", "", "with --daemon: append logs to this file (default: syslog/journald)")
	fl.BoolVar(&f.allowOther, "allow-other", false, "let other users read the mount, as owner and modes allow (always on for root; others need user_allow_other in /etc/fuse.conf)")
	fl.IntVar(&f.uid, "uid", -1, "user id shown as the owner of every file (default: the mounting user)")
	fl.IntVar(&f.gid, "gid", -1, "group id shown for every file (default: the mounting user's group)")
	fl.Var(umaskValue{&f.umask}, "umask", "permission bits to clear, in octal (files are 0444, folders 0555 before it), e.g. 027")
}

// owner returns the owner the files show, or nil for the mounting user's.
func (f *serviceFlags) owner() *fusefs.Owner {
	if f.uid < 0 && f.gid < 0 {
		return nil
	}
	o := &fusefs.Owner{UID: uint32(os.Getuid()), GID: uint32(os.Getgid())}
	if f.uid >= 0 {
		o.UID = uint32(f.uid)
	}
	if f.gid >= 0 {
		o.GID = uint32(f.gid)
	}
	return o
}

// check refuses ids out of range (a uid is 32 bits; -1 means "not set").
func (f *serviceFlags) check(cmd *cobra.Command) error {
	for _, id := range []struct {
		name string
		v    int
	}{{"uid", f.uid}, {"gid", f.gid}} {
		if id.v < -1 || id.v >= 1<<32-1 {
			return newUsageError(cmd, "--%s %d: want a user or group id from 0 to 4294967294", id.name, id.v)
		}
	}
	if f.logFile != "" && !f.daemon && os.Getenv(daemonFDEnv) == "" {
		return newUsageError(cmd, "--log-file needs --daemon (in the foreground, logs go to standard error)")
	}
	return nil
}

// umaskValue is a pflag.Value for an octal umask such as 022 or 0027.
type umaskValue struct{ m *uint32 }

func (v umaskValue) String() string {
	if v.m == nil {
		return "0"
	}
	return fmt.Sprintf("%03o", *v.m)
}

func (v umaskValue) Set(s string) error {
	m, err := strconv.ParseUint(s, 8, 32)
	if err != nil || m > 0o777 {
		return fmt.Errorf("invalid umask %q: want octal digits up to 0777, e.g. 022", s)
	}
	*v.m = uint32(m)
	return nil
}

func (v umaskValue) Type() string { return "octal" }

// daemonFDEnv names the descriptor on which a --daemon child reports to its parent. The
// child writes what it prints to standard error there until the mount is ready, then the
// readyMarker line, and closes it; a child that fails before exits instead, and its parent
// exits with the child's status.
const daemonFDEnv = "GOTFS_DAEMON_FD"

// readyMarker ends what a daemon child reports: the mount is ready.
const readyMarker = "\x00ready\n"

// daemonize runs this command line again as a background process in its own session and
// waits until the mount is ready or the child fails. The child's logs go to logFile (or to
// syslog when it is ""); what it prints before it is ready is printed here too.
func daemonize(ctx context.Context, a *app, logFile string) error {
	exe, err := os.Executable()
	if err != nil {
		return fmt.Errorf("daemon: find own executable: %w", err)
	}
	r, w, err := os.Pipe()
	if err != nil {
		return fmt.Errorf("daemon: %w", err)
	}
	defer r.Close()
	args := a.args
	if args == nil {
		args = os.Args[1:]
	}
	child := exec.Command(exe, args...)
	child.Env = append(os.Environ(), daemonFDEnv+"=3")
	child.ExtraFiles = []*os.File{w}
	child.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	// The child keeps the working folder: relative paths in args (and a watched folder of
	// .torrent files) mean what they meant here.
	if logFile != "" {
		lf, err := os.OpenFile(logFile, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o640)
		if err != nil {
			w.Close()
			return fmt.Errorf("log file %s: %w", logFile, unwrapPathErr(err))
		}
		defer lf.Close()
		child.Stdout, child.Stderr = lf, lf
	}
	if err := child.Start(); err != nil {
		w.Close()
		return fmt.Errorf("daemon: start %s: %w", exe, err)
	}
	w.Close()
	// A signal to the parent while it waits stops the child too.
	stop := context.AfterFunc(ctx, func() { child.Process.Signal(syscall.SIGTERM) })
	defer stop()
	ready, err := relayUntilReady(r, a.stderr)
	if ready {
		child.Process.Release()
		return nil
	}
	werr := child.Wait()
	if ctx.Err() != nil {
		return errInterrupted
	}
	var ee *exec.ExitError
	if errors.As(werr, &ee) && ee.ExitCode() > 0 {
		// The child printed its own error (relayed above).
		return childExit{code: ee.ExitCode()}
	}
	if werr = errors.Join(werr, err); werr != nil {
		return fmt.Errorf("daemon: the mount process ended before the mount was ready: %w", werr)
	}
	return errors.New("daemon: the mount process exited before the mount was ready")
}

// relayUntilReady copies what the child reports to w until the ready marker (true) or the end
// of the pipe (false: the child failed or exited).
func relayUntilReady(r io.Reader, w io.Writer) (bool, error) {
	br := bufio.NewReader(r)
	for {
		line, err := br.ReadString('\n')
		if line == readyMarker {
			return true, nil
		}
		io.WriteString(w, line)
		if err != nil {
			if errors.Is(err, io.EOF) {
				return false, nil
			}
			return false, err
		}
	}
}

// childExit is the exit status of a daemon child that failed; it printed its error already.
type childExit struct{ code int }

func (e childExit) Error() string { return fmt.Sprintf("mount process exited with status %d", e.code) }

// daemonChild is the reporting end of a --daemon child: standard error is copied to the
// parent until ready is called.
type daemonChild struct {
	mu   sync.Mutex
	pipe *os.File // nil once ready
}

// startDaemonChild sets a up as the background child of `gotfs mount --daemon` when the
// parent says so ($GOTFS_DAEMON_FD): printed messages go to the parent until the mount is
// ready, and logs go to standard error (the --log-file, set up by the parent) or to syslog.
func startDaemonChild(a *app, logFile string) error {
	fdStr := os.Getenv(daemonFDEnv)
	if fdStr == "" {
		return nil
	}
	os.Unsetenv(daemonFDEnv)
	fd, err := strconv.Atoi(fdStr)
	if err != nil || fd < 3 {
		return fmt.Errorf("$%s=%q: not a descriptor", daemonFDEnv, fdStr)
	}
	d := &daemonChild{pipe: os.NewFile(uintptr(fd), "daemon-parent")}
	a.onReady = d.ready
	logOut := io.Writer(os.Stderr)
	var handler slog.Handler
	if logFile == "" {
		sw, err := syslog.New(syslog.LOG_DAEMON|syslog.LOG_INFO, "gotfs")
		if err != nil {
			// No syslog daemon: logs are lost, but what the parent shows is not.
			logOut = io.Discard
		} else {
			out := &syslogOut{w: sw}
			logOut = out
			handler = syslogHandler{slog.NewTextHandler(&out.buf, &slog.HandlerOptions{Level: a.logLevel(), ReplaceAttr: dropTime}), out}
		}
	}
	if handler == nil {
		handler = slog.NewTextHandler(logOut, &slog.HandlerOptions{Level: a.logLevel()})
	}
	a.log = slog.New(handler)
	a.stderr = io.MultiWriter(logOut, d)
	a.stdout = a.stderr
	return nil
}

// Write copies p to the parent until the mount is ready.
func (d *daemonChild) Write(p []byte) (int, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.pipe != nil {
		d.pipe.Write(p)
	}
	return len(p), nil
}

// ready tells the parent that the mount is up and lets it go.
func (d *daemonChild) ready(string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.pipe != nil {
		io.WriteString(d.pipe, readyMarker)
		d.pipe.Close()
		d.pipe = nil
	}
}

// dropTime leaves the time out of syslog lines (syslog stamps them).
func dropTime(groups []string, a slog.Attr) slog.Attr {
	if len(groups) == 0 && a.Key == slog.TimeKey {
		return slog.Attr{}
	}
	return a
}

// syslogOut sends lines to syslog: printed messages at info, log records at their level.
type syslogOut struct {
	w   *syslog.Writer
	mu  sync.Mutex
	buf bytes.Buffer // one formatted record (syslogHandler)
}

// Write sends each printed line at info level.
func (o *syslogOut) Write(p []byte) (int, error) {
	for _, l := range strings.Split(strings.TrimRight(string(p), "\n"), "\n") {
		if l != "" {
			o.w.Info(l)
		}
	}
	return len(p), nil
}

// syslogHandler formats a record as text and sends it to syslog at the record's level.
type syslogHandler struct {
	slog.Handler // writes into out.buf
	out          *syslogOut
}

func (h syslogHandler) Handle(ctx context.Context, r slog.Record) error {
	h.out.mu.Lock()
	defer h.out.mu.Unlock()
	h.out.buf.Reset()
	if err := h.Handler.Handle(ctx, r); err != nil {
		return err
	}
	line := strings.TrimRight(h.out.buf.String(), "\n")
	switch {
	case r.Level >= slog.LevelError:
		return h.out.w.Err(line)
	case r.Level >= slog.LevelWarn:
		return h.out.w.Warning(line)
	case r.Level >= slog.LevelInfo:
		return h.out.w.Info(line)
	}
	return h.out.w.Debug(line)
}

func (h syslogHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	return syslogHandler{h.Handler.WithAttrs(attrs), h.out}
}

func (h syslogHandler) WithGroup(name string) slog.Handler {
	return syslogHandler{h.Handler.WithGroup(name), h.out}
}
