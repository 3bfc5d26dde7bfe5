package gribi

import (
	"fmt"
	"time"

	spb "github.com/openconfig/gribi/v1/proto/service"
)

// timeNow is the clock of Flush's timestamp.
var timeNow = time.Now

// uint128 is an election id.
type uint128 struct{ hi, lo uint64 }

func u128(v *spb.Uint128) uint128 { return uint128{hi: v.GetHigh(), lo: v.GetLow()} }

func (a uint128) isZero() bool { return a.hi == 0 && a.lo == 0 }

func (a uint128) less(b uint128) bool { return a.hi < b.hi || a.hi == b.hi && a.lo < b.lo }

func (a uint128) proto() *spb.Uint128 { return &spb.Uint128{High: a.hi, Low: a.lo} }

func (a uint128) String() string {
	if a.hi == 0 {
		return fmt.Sprint(a.lo)
	}
	return fmt.Sprintf("%d:%d", a.hi, a.lo)
}
