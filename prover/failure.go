package prover

import (
	"errors"
	"fmt"
	"strings"
)

// FailureKind says how a child failed a request.
type FailureKind string

// Failure kinds.
const (
	// FailTimeout: no answer within the block's CheckTimeoutSecs or
	// ProveTimeoutSecs. The child is killed and restarted.
	FailTimeout FailureKind = "timeout"
	// FailMalformed: the child answered with something that is not an
	// answer to the task (not a protocol response, or output of the wrong
	// shape).
	FailMalformed FailureKind = "malformed answer"
	// FailExited: the process exited or was killed with the request in
	// flight.
	FailExited FailureKind = "exited"
)

// ChildFailure is a request that failed because of the child that held it,
// not because of its task: another child may well answer it. Timeouts and
// deaths wrap ErrChildLost.
type ChildFailure struct {
	Child  string      `json:"child"`
	PID    int         `json:"pid"`
	Kind   FailureKind `json:"kind"`
	Detail string      `json:"detail"`
}

func (f *ChildFailure) Error() string {
	return fmt.Sprintf("child %s (pid %d) %s: %s", f.Child, f.PID, f.Kind, f.Detail)
}

// Unwrap makes a timed-out or dead child's failure an ErrChildLost; a
// malformed answer was an answer, so it is not.
func (f *ChildFailure) Unwrap() error {
	if f.Kind == FailMalformed {
		return nil
	}
	return ErrChildLost
}

// maxAttempts bounds how many children one read-only request is tried on.
const maxAttempts = 3

// errNoOtherChild ends the retries of a request when every healthy child
// has already failed it.
var errNoOtherChild = errors.New("no other healthy child to retry on")

// RetryError is a request that every child it was tried on failed.
type RetryError struct {
	Failures []ChildFailure
	// Last is why no further attempt was made (errNoOtherChild, the
	// attempt limit, the caller's deadline).
	Last error
}

func (e *RetryError) Error() string {
	parts := make([]string, len(e.Failures))
	for i := range e.Failures {
		parts[i] = e.Failures[i].Error()
	}
	return fmt.Sprintf("%s; %v", strings.Join(parts, "; then "), e.Last)
}

// Unwrap exposes the last failure and the reason retries stopped.
func (e *RetryError) Unwrap() []error {
	out := []error{e.Last}
	if n := len(e.Failures); n > 0 {
		out = append(out, &e.Failures[n-1])
	}
	return out
}
