package lora

import (
	"slices"
	"strings"
	"testing"
)

func TestParseTargets(t *testing.T) {
	got, err := ParseTargets(" v_proj,q_proj , down_proj,q_proj")
	if err != nil || !slices.Equal(got, []string{"down_proj", "q_proj", "v_proj"}) {
		t.Errorf("ParseTargets: %v, %v", got, err)
	}
	all, err := ParseTargets(strings.Join(AllTargets, ","))
	if err != nil || len(all) != 7 {
		t.Errorf("every projection: %v, %v", all, err)
	}
	for _, tc := range []struct{ in, want string }{
		{"q_proj,x_proj", `unknown target module "x_proj": accepted are q_proj, k_proj, v_proj, o_proj, gate_proj, up_proj, down_proj`},
		{"q", `unknown target module "q"`},
		{" , ", "no target module"},
		{"", "no target module"},
	} {
		if _, err := ParseTargets(tc.in); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("ParseTargets(%q): %v, want %q", tc.in, err, tc.want)
		}
	}
}
