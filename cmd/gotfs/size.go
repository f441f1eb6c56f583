package main

import (
	"fmt"
	"math"
	"math/big"
	"regexp"
	"strings"
)

// Sizes on the command line are binary: k, kb and KiB all mean 1024 bytes (piece lengths and
// cache bounds are powers of two; a "16kb" that meant 16000 would surprise). Case does not
// matter, a space may stand before the unit, and a decimal point is allowed while the result
// is a whole number of bytes (1.5GiB, 0.5k).
var sizeMultipliers = map[string]int64{
	"": 1, "b": 1,
	"k": 1 << 10, "kb": 1 << 10, "kib": 1 << 10,
	"m": 1 << 20, "mb": 1 << 20, "mib": 1 << 20,
	"g": 1 << 30, "gb": 1 << 30, "gib": 1 << 30,
	"t": 1 << 40, "tb": 1 << 40, "tib": 1 << 40,
	"p": 1 << 50, "pb": 1 << 50, "pib": 1 << 50,
}

// sizeSyntax is digits, an optional fraction, optional spaces and an optional unit; nothing
// else (no sign, exponent, NaN, Inf, hex or underscores).
var sizeSyntax = regexp.MustCompile(`^([0-9]+(?:\.[0-9]+)?) *([a-z]*)$`)

// parseSize reads a size such as "4096", "256k", "16KiB", "1.5 GiB".
func parseSize(s string) (int64, error) {
	m := sizeSyntax.FindStringSubmatch(strings.ToLower(strings.TrimSpace(s)))
	if m == nil {
		return 0, fmt.Errorf("invalid size %q: want a whole number with an optional unit, e.g. 4096, 256KiB, 1.5GiB", s)
	}
	mult, ok := sizeMultipliers[m[2]]
	if !ok {
		return 0, fmt.Errorf("invalid size %q: unknown unit %q (B, KiB, MiB, GiB, TiB, PiB; k and KB mean KiB)", s, m[2])
	}
	if len(m[1]) > 40 {
		return 0, fmt.Errorf("invalid size %q: too large", s)
	}
	n, ok := new(big.Rat).SetString(m[1])
	if !ok {
		return 0, fmt.Errorf("invalid size %q", s)
	}
	n.Mul(n, new(big.Rat).SetInt64(mult))
	if !n.IsInt() {
		return 0, fmt.Errorf("invalid size %q: not a whole number of bytes", s)
	}
	if !n.Num().IsInt64() {
		return 0, fmt.Errorf("invalid size %q: too large", s)
	}
	return n.Num().Int64(), nil
}

// formatSize prints n bytes with a binary unit, e.g. "1.2 GiB"; exact powers print whole
// ("16 KiB", "1 GiB").
func formatSize(n int64) string {
	const unit = 1024
	if n < unit && n > -unit {
		return fmt.Sprintf("%d B", n)
	}
	neg := ""
	if n < 0 {
		if n == math.MinInt64 {
			return "-8 EiB"
		}
		neg, n = "-", -n
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit && exp < 5; m /= unit {
		div *= unit
		exp++
	}
	if n%div == 0 {
		return fmt.Sprintf("%s%d %ciB", neg, n/div, "KMGTPE"[exp])
	}
	return fmt.Sprintf("%s%.1f %ciB", neg, float64(n)/float64(div), "KMGTPE"[exp])
}

// sizeValue is a pflag.Value that accepts human-readable sizes.
type sizeValue struct{ n *int64 }

func (v sizeValue) String() string {
	if v.n == nil || *v.n == 0 {
		return "0"
	}
	return formatSize(*v.n)
}

func (v sizeValue) Set(s string) error {
	n, err := parseSize(s)
	if err != nil {
		return err
	}
	*v.n = n
	return nil
}

func (v sizeValue) Type() string { return "size" }
