package utp

import (
	"errors"
	"log/slog"
	"math/rand/v2"
	"time"
)

// Config tunes a Socket. The zero value is usable: every zero field gets its default.
type Config struct {
	// Logger receives debug messages; nil discards them.
	Logger *slog.Logger
	// MaxPayload is the largest payload of one packet, bytes (default 1400: a 1500-byte path
	// MTU less IP, UDP and uTP headers, with room for tunnels). At most 65000.
	MaxPayload int
	// SendBuffer bounds what a connection holds of written but unacknowledged bytes (default
	// 1 MiB); Write blocks while it is full. It also caps the congestion window.
	SendBuffer int
	// RecvBuffer bounds what a connection holds of received but unread bytes, in order or
	// not (default 1 MiB); its free space is the window advertised to the peer.
	RecvBuffer int
	// MaxConns bounds the connections of the socket, in every state (default 1024).
	MaxConns int
	// MaxHalfOpen bounds incoming connections that have sent a SYN and nothing since
	// (default 64); SYNs beyond it are dropped.
	MaxHalfOpen int
	// Backlog bounds the established connections waiting for Accept (default 128).
	Backlog int
	// TargetDelay is LEDBAT's queueing delay target (default 100 ms).
	TargetDelay time.Duration
	// MinRTO is the floor of the retransmission timeout (default 500 ms, as BEP 29).
	MinRTO time.Duration
	// MaxRetransmits is how many timeouts in a row, each doubling the last, a connection
	// survives before it is dropped (default 5: about 30 s); SYNs get SYNRetransmits (3).
	MaxRetransmits int
	SYNRetransmits int
	// HalfOpenTimeout drops an incoming connection whose initiator never follows its SYN
	// up (default 15 s).
	HalfOpenTimeout time.Duration
	// KeepAlive is how long a connection may send nothing before it sends an ACK to keep
	// NAT mappings open (default 29 s).
	KeepAlive time.Duration
	// IdleTimeout drops a connection that has received nothing for this long (default 5 min).
	IdleTimeout time.Duration
	// ZeroWindowTimeout drops a connection whose peer has kept its receive window closed
	// this long while we had data for it (default 60 s). Meanwhile we probe it.
	ZeroWindowTimeout time.Duration
	// LingerTimeout bounds how long a closed connection keeps sending what was written
	// before Close, and its FIN (default 60 s).
	LingerTimeout time.Duration

	// firstSeq picks the first sequence number of a connection (tests start near the wrap).
	firstSeq func() uint16
	// noOffload keeps GSO and GRO off, so that tests cover the one-datagram-per-call path.
	noOffload bool
}

func (c *Config) setDefaults() {
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	def := func(v *int, d int) {
		if *v <= 0 {
			*v = d
		}
	}
	defDur := func(v *time.Duration, d time.Duration) {
		if *v <= 0 {
			*v = d
		}
	}
	def(&c.MaxPayload, 1400)
	c.MaxPayload = min(max(c.MaxPayload, 150), 65000)
	def(&c.SendBuffer, 1<<20)
	def(&c.RecvBuffer, 1<<20)
	c.SendBuffer = max(c.SendBuffer, 4*c.MaxPayload)
	c.RecvBuffer = max(c.RecvBuffer, 4*c.MaxPayload)
	def(&c.MaxConns, 1024)
	def(&c.MaxHalfOpen, 64)
	def(&c.Backlog, 128)
	def(&c.MaxRetransmits, 5)
	def(&c.SYNRetransmits, 3)
	defDur(&c.TargetDelay, 100*time.Millisecond)
	defDur(&c.MinRTO, 500*time.Millisecond)
	defDur(&c.HalfOpenTimeout, 15*time.Second)
	defDur(&c.KeepAlive, 29*time.Second)
	defDur(&c.IdleTimeout, 5*time.Minute)
	defDur(&c.ZeroWindowTimeout, 60*time.Second)
	defDur(&c.LingerTimeout, 60*time.Second)
	if c.firstSeq == nil {
		c.firstSeq = func() uint16 { return uint16(rand.Uint32()) }
	}
}

// Errors a connection ends with (Read and Write return them once buffered data is gone).
var (
	// ErrReset: the peer sent ST_RESET.
	ErrReset = errors.New("utp: connection reset by peer")
	// ErrRefused: the peer answered our SYN with ST_RESET.
	ErrRefused = errors.New("utp: connection refused")
	// ErrTimedOut: the peer stopped acknowledging (retransmissions exhausted), never
	// answered our SYN, or sent nothing for IdleTimeout.
	ErrTimedOut = errors.New("utp: peer stopped answering")
	// ErrZeroWindow: the peer kept its receive window closed for ZeroWindowTimeout.
	ErrZeroWindow = errors.New("utp: peer's receive window stayed closed")
	// ErrTooManyConns: the socket holds MaxConns connections.
	ErrTooManyConns = errors.New("utp: too many connections")
	// ErrBacklog: an incoming connection found the accept queue full and was reset.
	ErrBacklog = errors.New("utp: accept queue full")
)
