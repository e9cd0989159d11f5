package consumer

// onDeadLetter reports a dead-lettered (or, dlq "", dropped) entry to
// Config.OnDeadLetter.
func (c *Consumer) onDeadLetter(t *tracked, dlq string) {
	if c.cfg.OnDeadLetter != nil {
		c.cfg.OnDeadLetter(&t.msg, dlq, t.lastErr)
	}
}
