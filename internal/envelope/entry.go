package envelope

// EntryData is the value of a stream entry's data field for a stored
// payload and its metadata, spliced without re-encoding: the metadata holds
// the payload's checksum, and re-encoding could change the payload's bytes.
// The relay and the public encoder both build entries with it, which is
// what keeps their bytes identical.
func EntryData(data, metadata []byte) string {
	b := make([]byte, 0, len(data)+len(metadata)+24)
	b = append(b, `{"data":`...)
	b = append(b, data...)
	b = append(b, `,"metadata":`...)
	b = append(b, metadata...)
	b = append(b, '}')
	return string(b)
}
