package node

import (
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/ssecluster/ssecluster/node/retry"
	"github.com/ssecluster/ssecluster/pubsub"
)

// TestRefuseHintRoundsUp: a refusal's hint is a wait the client must not
// cut short. The remaining wait of an early client is rarely whole
// milliseconds; rounded down it could be "retry: 0" while the client is
// still early, and a client that honours it is judged early again.
func TestRefuseHintRoundsUp(t *testing.T) {
	b, err := pubsub.NewMemory(pubsub.MemoryConfig{})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	s, err := New(Config{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}, b)
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		hint time.Duration
		want string
	}{
		{0, "retry: 0\n: early\n\n"},
		{time.Nanosecond, "retry: 1\n: early\n\n"},
		{999 * time.Microsecond, "retry: 1\n: early\n\n"},
		{time.Millisecond, "retry: 1\n: early\n\n"},
		{1500 * time.Microsecond, "retry: 2\n: early\n\n"},
		{2 * time.Second, "retry: 2000\n: early\n\n"},
	}
	for _, c := range cases {
		t.Run(c.hint.String(), func(t *testing.T) {
			rec := httptest.NewRecorder()
			ctx := s.echo.NewContext(httptest.NewRequest(http.MethodGet, "/v1/events?topic=a", nil), rec)
			if err := s.refuse(ctx, RefuseEarly, c.hint, retry.State{}); err != nil {
				t.Fatal(err)
			}
			if rec.Code != http.StatusOK || rec.Body.String() != c.want {
				t.Errorf("refuse(%v): %d %q, want 200 %q", c.hint, rec.Code, rec.Body.String(), c.want)
			}
		})
	}
}
