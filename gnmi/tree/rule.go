package tree

import "errors"

// ErrRule marks a commit that a semantic rule refused (a validator the
// store runs after schema validation): the data is well formed but the
// tree it would make breaks a rule, such as one address held by two pods.
// gNMI reports it as FAILED_PRECONDITION.
var ErrRule = errors.New("refused by rule")

// RuleError is a semantic rule's refusal of a commit. Reason is stable
// (UPPER_SNAKE_CASE, part of the API: the gNMI target puts it in the
// google.rpc.ErrorInfo of the failed Set), so clients branch on it and
// never on the message.
type RuleError struct {
	Reason string // e.g. POD_ADDRESS_IN_USE
	Path   string // the data path the rule objects to, in gNMI string form
	Detail string // for people
	// Err is ErrRule, or ErrBadValue when the rule found the value itself
	// malformed (reported as INVALID_ARGUMENT); nil means ErrRule.
	Err error
}

func (e *RuleError) Error() string {
	return e.Unwrap().Error() + " " + e.Reason + " at " + e.Path + ": " + e.Detail
}

func (e *RuleError) Unwrap() error {
	if e.Err == nil {
		return ErrRule
	}
	return e.Err
}
