package secretin

import (
	"os"
	"path/filepath"
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

func TestReadFile(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		t.Helper()
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return path
	}
	for _, tc := range []struct{ name, content, want string }{
		{"a line", "Bearer s3cret\n", "Bearer s3cret"},
		{"the first of two CRLF lines", "Bearer s3cret\r\nsecond\n", "Bearer s3cret"},
		{"no newline", "Bearer s3cret", "Bearer s3cret"},
	} {
		got, err := ReadFile(write(tc.name, tc.content))
		if err != nil || got != tc.want {
			t.Errorf("%s: ReadFile = %q, %v; want %q", tc.name, got, err, tc.want)
		}
	}
	for _, tc := range []struct{ name, content string }{
		{"empty", ""},
		{"an empty first line", "\nBearer s3cret\n"},
		{"too large", "Bearer s3cret" + strings.Repeat("x", 64<<10) + "\n"},
	} {
		_, err := ReadFile(write(tc.name, tc.content))
		if err == nil {
			t.Errorf("%s: ReadFile accepted it", tc.name)
		} else if strings.Contains(err.Error(), "s3cret") {
			t.Errorf("%s: the error quotes the secret: %v", tc.name, err)
		}
	}
	if _, err := ReadFile(filepath.Join(dir, "missing")); err == nil {
		t.Error("ReadFile of a missing file succeeded")
	}
}

func TestFromEnv(t *testing.T) {
	t.Setenv("SECRETIN_TEST_SET", "Bearer s3cret")
	t.Setenv("SECRETIN_TEST_EMPTY", "")
	if got, err := FromEnv("SECRETIN_TEST_SET"); err != nil || got != "Bearer s3cret" {
		t.Errorf("FromEnv = %q, %v", got, err)
	}
	for _, name := range []string{"SECRETIN_TEST_EMPTY", "SECRETIN_TEST_UNSET", ""} {
		if _, err := FromEnv(name); err == nil {
			t.Errorf("FromEnv(%q) accepted it", name)
		}
	}
}
