package node

import (
	"runtime/debug"
	"testing"
)

func TestVersionOf(t *testing.T) {
	const rev = "6c411d300762f00dfeedbeef0123456789abcdef"
	vcs := func(modified string) []debug.BuildSetting {
		return []debug.BuildSetting{{Key: "vcs.revision", Value: rev}, {Key: "vcs.modified", Value: modified}}
	}
	tests := []struct {
		name     string
		version  string
		settings []debug.BuildSetting
		want     string
	}{
		{"no build info version, no VCS", "", nil, "(devel)"},
		{"devel, no VCS", "(devel)", nil, "(devel)"},
		{"devel, clean checkout", "(devel)", vcs("false"), "(devel)+6c411d300762"},
		{"devel, modified checkout", "(devel)", vcs("true"), "(devel)+6c411d300762.dirty"},
		{"Go's pseudo-version carries the revision", "v0.0.0-20261121120946-6c411d300762+dirty", vcs("true"), "v0.0.0-20261121120946-6c411d300762+dirty"},
		{"a tag", "v1.2.3", vcs("false"), "v1.2.3+6c411d300762"},
		{"short revision", "(devel)", []debug.BuildSetting{{Key: "vcs.revision", Value: "abc"}}, "(devel)+abc"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := versionOf(tt.version, tt.settings); got != tt.want {
				t.Errorf("versionOf(%q) = %q, want %q", tt.version, got, tt.want)
			}
		})
	}
}
