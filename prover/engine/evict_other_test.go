//go:build !linux

package engine

import "errors"

func evict(string) error { return errors.New("page-cache eviction is only implemented on linux") }
