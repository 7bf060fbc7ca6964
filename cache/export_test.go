package cache

// WithBeforeFill returns o with a hook that runs between a load and its
// fill, so tests can make a reader slow at the worst moment.
func WithBeforeFill(o Options, f func()) Options {
	o.beforeFill = f
	return o
}
