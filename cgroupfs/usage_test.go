//go:build !integration

package cgroupfs

import (
	"reflect"
	"testing"
)

// TestUsageAdd: every field of Usage is summed, so a field added to Usage
// and forgotten in Add fails here. Each field gets values of its own in
// both operands, so that a field summed into another shows too.
func TestUsageAdd(t *testing.T) {
	var u, v Usage
	ru, rv := reflect.ValueOf(&u).Elem(), reflect.ValueOf(&v).Elem()
	typ := ru.Type()
	for i := range typ.NumField() {
		if k := typ.Field(i).Type.Kind(); k != reflect.Uint64 {
			t.Fatalf("Usage.%s is a %v: this test (and Add) know only uint64 counters", typ.Field(i).Name, k)
		}
		ru.Field(i).SetUint(uint64(i+1) << 8)
		rv.Field(i).SetUint(uint64(i + 1))
	}
	u.Add(v)
	for i := range typ.NumField() {
		if got, want := ru.Field(i).Uint(), uint64(i+1)<<8+uint64(i+1); got != want {
			t.Errorf("after Add, Usage.%s = %d, want %d + %d = %d", typ.Field(i).Name, got, uint64(i+1)<<8, i+1, want)
		}
	}
}
