//go:build !linux

package filechange

// Watch returns ErrUnsupported: only Linux has a watch here.
func Watch(dir string, names ...string) (*Watcher, error) { return nil, ErrUnsupported }
