// Package intent holds pure functions from the data tree (and the accord of
// the posture level in effect) to the plain Config of a dataplane backend.
// They run on a snapshot of the tree, in a reconciler or in a posture
// step, and do no I/O: what they return is the whole desired state.
package intent
