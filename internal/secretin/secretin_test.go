package secretin

import (
	"strings"
	"testing"
)

func TestReadLine(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"wonderland\n", "wonderland"},
		{"wonderland\r\nsecond line\n", "wonderland"},
		{"no newline", "no newline"},
		{"  spaces kept  \n", "  spaces kept  "},
	} {
		got, err := ReadLine(strings.NewReader(tc.in))
		if err != nil || got != tc.want {
			t.Errorf("ReadLine(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
		}
	}
	for _, in := range []string{"", "\n"} {
		if _, err := ReadLine(strings.NewReader(in)); err == nil {
			t.Errorf("ReadLine(%q) accepted an empty secret", in)
		}
	}
}
