//go:build !linux

package consumer

import "errors"

// lowerThreadPriority is Linux only: elsewhere nice values belong to the
// whole process.
func lowerThreadPriority(int) error { return errors.ErrUnsupported }
