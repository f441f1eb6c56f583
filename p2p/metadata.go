package p2p

import (
	"crypto/sha1"
	"errors"
	"fmt"
	"math"
	"strconv"

	"github.com/gotfs/gotfs/torrentfile/bencode"
)

// MetadataPieceSize is the size of a ut_metadata piece (BEP 9); only the last piece of the
// metadata may be shorter.
const MetadataPieceSize = 16 * 1024

// MaxMetadataSize is the largest metadata (info dictionary) we accept or serve: a larger
// metadata_size or total_size is refused.
const MaxMetadataSize = 16 << 20

// maxMetadataPieces is the number of pieces of metadata of MaxMetadataSize bytes.
const maxMetadataPieces = MaxMetadataSize / MetadataPieceSize

// MetadataMsgType is the msg_type of a ut_metadata message.
type MetadataMsgType int

// The ut_metadata message types of BEP 9.
const (
	MetadataRequest MetadataMsgType = 0
	MetadataData    MetadataMsgType = 1
	MetadataReject  MetadataMsgType = 2
)

// String returns "request", "data", "reject" or "msg_type N".
func (t MetadataMsgType) String() string {
	switch t {
	case MetadataRequest:
		return "request"
	case MetadataData:
		return "data"
	case MetadataReject:
		return "reject"
	}
	return "msg_type " + strconv.Itoa(int(t))
}

// ErrUnknownMetadataMsgType is returned by ParseMetadataMsg for a well-formed message with a
// msg_type other than request, data or reject. BEP 9 says such messages MUST be ignored, so
// this error does not wrap ErrProtocol: the engine should drop the message, not the peer.
var ErrUnknownMetadataMsgType = errors.New("unknown ut_metadata msg_type")

// ErrMetadataMismatch is returned by Metadata.Verify when the assembled bytes do not hash to
// the info hash. Some peer sent bad pieces; which one is not known.
var ErrMetadataMismatch = errors.New("metadata does not match the info hash")

// ErrMetadataIncomplete is returned by Metadata.Verify when pieces are still missing.
var ErrMetadataIncomplete = errors.New("metadata incomplete")

// MetadataMsg is one ut_metadata message (BEP 9): the payload of an extended message sent
// under the peer's "ut_metadata" id.
type MetadataMsg struct {
	// Type is request, data or reject.
	Type MetadataMsgType
	// Piece is the index of the 16 KiB metadata piece the message is about.
	Piece int
	// TotalSize is the size of the whole metadata ("total_size"); data messages only.
	TotalSize int
	// Data is the piece's bytes; data messages only. A parsed Data aliases the input.
	Data []byte
}

// metadataPieces returns the number of pieces of metadata of size bytes.
func metadataPieces(size int) int {
	return (size + MetadataPieceSize - 1) / MetadataPieceSize
}

// metadataPieceLen returns the length of piece i of metadata of size bytes; i must be in range.
func metadataPieceLen(size, i int) int {
	return min(MetadataPieceSize, size-i*MetadataPieceSize)
}

// checkMetadataData checks that piece and data fit metadata of totalSize bytes.
func checkMetadataData(piece, totalSize, dataLen int) error {
	if totalSize <= 0 || totalSize > MaxMetadataSize {
		return protoErr("ut_metadata total_size %d out of range 1..%d", totalSize, MaxMetadataSize)
	}
	n := metadataPieces(totalSize)
	if piece < 0 || piece >= n {
		return protoErr("ut_metadata piece %d out of range (%d pieces of %d bytes)", piece, n, totalSize)
	}
	if want := metadataPieceLen(totalSize, piece); dataLen != want {
		return protoErr("ut_metadata piece %d of %d bytes, want %d", piece, dataLen, want)
	}
	return nil
}

// Encode returns the message's payload: the bencoded dictionary, followed for data messages
// by the raw piece. It checks what ParseMetadataMsg checks, so that we never send what we
// would refuse.
func (m MetadataMsg) Encode() ([]byte, error) {
	if m.Piece < 0 || m.Piece >= maxMetadataPieces {
		return nil, fmt.Errorf("p2p: encode ut_metadata %v: piece %d out of range 0..%d", m.Type, m.Piece, maxMetadataPieces-1)
	}
	b := make([]byte, 0, 64+len(m.Data))
	b = append(b, "d8:msg_typei"...)
	b = strconv.AppendInt(b, int64(m.Type), 10)
	b = append(b, "e5:piecei"...)
	b = strconv.AppendInt(b, int64(m.Piece), 10)
	switch m.Type {
	case MetadataRequest, MetadataReject:
		if m.TotalSize != 0 || len(m.Data) != 0 {
			return nil, fmt.Errorf("p2p: encode ut_metadata %v: total_size and data are for data messages", m.Type)
		}
		return append(b, "ee"...), nil
	case MetadataData:
		if err := checkMetadataData(m.Piece, m.TotalSize, len(m.Data)); err != nil {
			return nil, fmt.Errorf("p2p: encode ut_metadata data: %w", err)
		}
		b = append(b, "e10:total_sizei"...)
		b = strconv.AppendInt(b, int64(m.TotalSize), 10)
		b = append(b, "ee"...)
		return append(b, m.Data...), nil
	}
	return nil, fmt.Errorf("p2p: encode ut_metadata: %w %d", ErrUnknownMetadataMsgType, int(m.Type))
}

// ParseMetadataMsg parses a ut_metadata payload: one bencoded dictionary (its end found with
// bencode.Span) with integer "msg_type" and "piece" and, for data messages, "total_size",
// followed for data messages by the piece's bytes (Data aliases b) and for other messages by
// nothing. Unknown keys are ignored. The piece must be in range for total_size (and, for
// requests and rejects, for MaxMetadataSize), total_size at most MaxMetadataSize, and the data
// exactly MetadataPieceSize bytes except for the last piece, which has the rest.
//
// Errors wrap ErrProtocol, except for a well-formed message of an unknown msg_type, which
// returns ErrUnknownMetadataMsgType (to be ignored, as BEP 9 says). ParseMetadataMsg never
// panics.
func ParseMetadataMsg(b []byte) (MetadataMsg, error) {
	m, err := parseMetadataMsg(b)
	if err != nil {
		return MetadataMsg{}, fmt.Errorf("p2p: parse ut_metadata message: %w", err)
	}
	return m, nil
}

func parseMetadataMsg(b []byte) (MetadataMsg, error) {
	var m MetadataMsg
	if len(b) > MaxExtendedPayload {
		return m, protoErr("%d bytes exceeds %d", len(b), MaxExtendedPayload)
	}
	if len(b) == 0 || b[0] != 'd' {
		return m, protoErr("payload does not start with a bencoded dictionary")
	}
	end, err := bencode.Span(b, 0)
	if err != nil {
		return m, protoErr("%w", err)
	}
	v, err := bencode.DecodeValue(b[:end])
	if err != nil {
		return m, protoErr("%w", err)
	}
	d, ok := v.(map[string]any)
	if !ok { // cannot happen after the 'd' check, but never trust a library with a type
		return m, protoErr("payload is not a bencoded dictionary")
	}
	typ, err := intKey(d, "msg_type", 0, math.MaxInt32)
	if err != nil {
		return m, err
	}
	piece, err := intKey(d, "piece", 0, maxMetadataPieces-1)
	if err != nil {
		return m, err
	}
	m.Type, m.Piece = MetadataMsgType(typ), piece
	rest := b[end:]
	switch m.Type {
	case MetadataRequest, MetadataReject:
		if len(rest) != 0 {
			return MetadataMsg{}, protoErr("%d bytes after a ut_metadata %v", len(rest), m.Type)
		}
	case MetadataData:
		total, err := intKey(d, "total_size", 1, MaxMetadataSize)
		if err != nil {
			return MetadataMsg{}, err
		}
		if err := checkMetadataData(piece, total, len(rest)); err != nil {
			return MetadataMsg{}, err
		}
		m.TotalSize, m.Data = total, rest
	default:
		return MetadataMsg{}, fmt.Errorf("%w %d", ErrUnknownMetadataMsgType, typ)
	}
	return m, nil
}

// intKey returns the integer stored under key in d, which must be present and in lo..hi.
func intKey(d map[string]any, key string, lo, hi int) (int, error) {
	v, ok := d[key]
	if !ok {
		return 0, protoErr("missing %q", key)
	}
	n, ok := v.(int64)
	if !ok {
		return 0, protoErr("%q is not an integer", key)
	}
	if n < int64(lo) || n > int64(hi) {
		return 0, protoErr("%q is %d, want %d..%d", key, n, lo, hi)
	}
	return int(n), nil
}

// MetadataPiece returns the slice of our own info dictionary info to serve for a request of
// piece (it aliases info). A piece out of range is an error wrapping ErrProtocol (the peer
// asked for what does not exist: answer with a reject), as is info larger than
// MaxMetadataSize or empty.
func MetadataPiece(info []byte, piece int) ([]byte, error) {
	if len(info) == 0 || len(info) > MaxMetadataSize {
		return nil, fmt.Errorf("p2p: metadata of %d bytes, want 1..%d", len(info), MaxMetadataSize)
	}
	if n := metadataPieces(len(info)); piece < 0 || piece >= n {
		return nil, fmt.Errorf("p2p: serve ut_metadata: %w", protoErr("piece %d out of range (%d pieces)", piece, n))
	}
	start := piece * MetadataPieceSize
	end := start + metadataPieceLen(len(info), piece)
	return info[start:end:end], nil
}

// Metadata assembles an info dictionary from ut_metadata pieces and checks it against the
// info hash. It holds no policy: which peer to ask for which piece, and what to do about a
// peer whose pieces fail verification, is the engine's business. A Metadata is not safe for
// concurrent use.
type Metadata struct {
	infoHash [20]byte
	size     int
	buf      []byte   // allocated on the first Put
	have     Bitfield // pieces received
	count    int      // pieces set in have
	verified bool
}

// NewMetadata returns an empty assembler for metadata of size bytes (from the peer's
// "metadata_size") that must hash to infoHash. A size outside 1..MaxMetadataSize is an error
// wrapping ErrProtocol. The size bytes are allocated only when the first piece arrives.
func NewMetadata(infoHash [20]byte, size int) (*Metadata, error) {
	if size <= 0 || size > MaxMetadataSize {
		return nil, fmt.Errorf("p2p: new metadata: %w", protoErr("metadata_size %d out of range 1..%d", size, MaxMetadataSize))
	}
	n := metadataPieces(size)
	return &Metadata{infoHash: infoHash, size: size, have: NewBitfield(n)}, nil
}

// Size returns the size of the metadata in bytes.
func (m *Metadata) Size() int { return m.size }

// NumPieces returns the number of 16 KiB pieces of the metadata.
func (m *Metadata) NumPieces() int { return metadataPieces(m.size) }

// Missing returns the indexes of the pieces not received yet, in increasing order (none once
// the metadata is verified).
func (m *Metadata) Missing() []int {
	if m.verified {
		return nil
	}
	n := m.NumPieces()
	out := make([]int, 0, n-m.count)
	for i := range n {
		if !m.have.Has(i) {
			out = append(out, i)
		}
	}
	return out
}

// Put stores piece's data (copied). The data must be exactly MetadataPieceSize bytes, or the
// rest for the last piece; a wrong length or a piece out of range is an error wrapping
// ErrProtocol. Receiving a piece twice overwrites it; pieces that arrive after a successful
// Verify are ignored.
func (m *Metadata) Put(piece int, data []byte) error {
	if err := checkMetadataData(piece, m.size, len(data)); err != nil {
		return fmt.Errorf("p2p: put metadata piece: %w", err)
	}
	if m.verified {
		return nil
	}
	if m.buf == nil {
		m.buf = make([]byte, m.size)
	}
	copy(m.buf[piece*MetadataPieceSize:], data)
	if !m.have.Has(piece) {
		m.have.Set(piece)
		m.count++
	}
	return nil
}

// Complete reports whether every piece has been received.
func (m *Metadata) Complete() bool { return m.count == m.NumPieces() }

// Verify checks the assembled metadata against the info hash and returns it. Once verified,
// the Metadata never modifies the returned bytes again (later pieces are ignored) and later
// calls return the same slice. With pieces missing it returns ErrMetadataIncomplete. When the SHA-1 differs it
// returns ErrMetadataMismatch and forgets every piece, so that the metadata can be fetched
// again.
func (m *Metadata) Verify() ([]byte, error) {
	if !m.Complete() {
		return nil, fmt.Errorf("p2p: verify metadata: %w (%d of %d pieces)", ErrMetadataIncomplete, m.count, m.NumPieces())
	}
	if m.verified {
		return m.buf, nil
	}
	if sha1.Sum(m.buf) != m.infoHash {
		clear(m.have)
		m.count = 0
		return nil, fmt.Errorf("p2p: verify metadata: %w", ErrMetadataMismatch)
	}
	m.verified = true
	return m.buf, nil
}
