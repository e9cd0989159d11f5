package consumer

// InlineArmed reports whether the dispatcher has armed the inline start
// (inline.go): the tests of package consumer_test wait for it.
func (c *Consumer) InlineArmed() bool { return c.inline.Load() == inlineArmed }
