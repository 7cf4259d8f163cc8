// Package secretin reads a secret (a password, a client secret, an
// Authorization header value) from standard input, a file or an environment
// variable, the ways Chit's commands take secrets: never as an argument,
// which other users of the machine could read from the process list.
package secretin

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
)

// ReadLine returns the first line of r without its line ending.
func ReadLine(r io.Reader) (string, error) {
	line, err := bufio.NewReader(r).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return "", fmt.Errorf("read from standard input: %w", err)
	}
	line = strings.TrimRight(line, "\r\n")
	if line == "" {
		return "", errors.New("standard input is empty: pipe the secret in")
	}
	return line, nil
}

// maxFile bounds a secret file: a secret is a line, and reading a large
// file by mistake (a log, a key store) should fail rather than send it.
const maxFile = 64 << 10

// ReadFile returns the first line of the file at path, as ReadLine does
// for standard input: for secrets kept in a file only their owner reads
// (a mounted Kubernetes secret). Its errors never quote the content.
func ReadFile(path string) (string, error) {
	file, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer file.Close()
	body, err := io.ReadAll(io.LimitReader(file, maxFile+1))
	if err != nil {
		return "", fmt.Errorf("read %s: %w", path, err)
	}
	if len(body) > maxFile {
		return "", fmt.Errorf("%s is larger than a secret can be (64 KiB)", path)
	}
	line, _, _ := strings.Cut(string(body), "\n")
	line = strings.TrimRight(line, "\r")
	if line == "" {
		return "", fmt.Errorf("%s is empty: write the secret on its first line", path)
	}
	return line, nil
}

// FromEnv returns the value of the environment variable name, for secrets
// a service manager or CI system exports: the variable's name goes on the
// command line, never its value. An unset or empty variable is refused.
func FromEnv(name string) (string, error) {
	if name == "" {
		return "", errors.New("name the environment variable that holds the secret")
	}
	value, ok := os.LookupEnv(name)
	if !ok {
		return "", fmt.Errorf("the environment variable %s is not set", name)
	}
	if value == "" {
		return "", fmt.Errorf("the environment variable %s is empty", name)
	}
	return value, nil
}
