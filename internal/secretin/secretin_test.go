package secretin

import (
	"strings"
	"testing"
)

func TestReadLine(t *testing.T) {
	for _, tc := range []struct{ name, in, want string }{
		{"a line", "wonderland\n", "wonderland"},
		{"the first of two CRLF lines", "wonderland\r\nsecond line\n", "wonderland"},
		{"no newline", "no newline", "no newline"},
		{"spaces kept", "  spaces kept  \n", "  spaces kept  "},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got, err := ReadLine(strings.NewReader(tc.in))
			if err != nil || got != tc.want {
				t.Errorf("ReadLine(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
			}
		})
	}
	for _, tc := range []struct{ name, in string }{
		{"empty input", ""},
		{"an empty line", "\n"},
	} {
		t.Run(tc.name+" is refused", func(t *testing.T) {
			t.Parallel()
			if _, err := ReadLine(strings.NewReader(tc.in)); err == nil {
				t.Errorf("ReadLine(%q) accepted an empty secret", tc.in)
			}
		})
	}
}
