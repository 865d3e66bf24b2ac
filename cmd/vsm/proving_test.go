package main

import (
	"reflect"
	"strings"
	"testing"
)

func TestParseSectorList(t *testing.T) {
	tests := []struct {
		in      string
		want    []uint64
		wantErr string
	}{
		{in: "7", want: []uint64{7}},
		{in: "1,2,5-9", want: []uint64{1, 2, 5, 6, 7, 8, 9}},
		{in: " 3 , 0-1 ", want: []uint64{3, 0, 1}},
		{in: "4-4", want: []uint64{4}},
		{in: "18446744073709551615", want: []uint64{18446744073709551615}},
		{in: "18446744073709551614-18446744073709551615", want: []uint64{18446744073709551614, 18446744073709551615}},
		{in: "", wantErr: "empty item"},
		{in: "1,,2", wantErr: "empty item"},
		{in: "x", wantErr: `"x" is not a sector number`},
		{in: "1-", wantErr: `"1-" is not a sector number`},
		{in: "-3", wantErr: `"-3" is not a sector number`},
		{in: "9-5", wantErr: "ends before it starts"},
		{in: "0-18446744073709551615", wantErr: "more than"},
		{in: "0-9999999,0-1", wantErr: "more than"},
	}
	for _, tt := range tests {
		got, err := parseSectorList(tt.in)
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("parseSectorList(%q) = %v, %v; want error containing %q", tt.in, got, err, tt.wantErr)
			}
			continue
		}
		if err != nil || !reflect.DeepEqual(got, tt.want) {
			t.Errorf("parseSectorList(%q) = %v, %v; want %v", tt.in, got, err, tt.want)
		}
	}
}
