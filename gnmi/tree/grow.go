package tree

// appendDoubling appends v to s, doubling the array when it is full.
// append grows a big slice by about a quarter, so a list built up to
// hundreds of thousands of items (a bulk Set's touched instances, its
// top-level JSON array, its changed entries) is copied some twenty times
// and allocates about five times its final size; doubling allocates
// about twice.
func appendDoubling[T any](s []T, v T) []T {
	if len(s) == cap(s) {
		s = append(make([]T, 0, max(16, 2*cap(s))), s...)
	}
	return append(s, v)
}
