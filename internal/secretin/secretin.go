// Package secretin reads a secret (a password, a client secret) from standard
// input, the way Chit's commands take secrets: never as an argument, which
// other users of the machine could read from the process list.
package secretin

import (
	"bufio"
	"errors"
	"fmt"
	"io"
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
