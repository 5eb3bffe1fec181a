package apierr

import (
	"errors"
	"fmt"
	"net/http"
	"reflect"
	"sync"
	"testing"

	"github.com/labstack/echo/v4"
)

func TestRender(t *testing.T) {
	cases := []struct {
		name       string
		err        error
		status     int
		code, text string
	}{
		{"ours", New(400, "invalid_topic", "topic %d", 2), 400, "invalid_topic", "topic 2"},
		{"ours wrapped", fmt.Errorf("ctx: %w", New(403, "forbidden_topic", "no")), 403, "forbidden_topic", "no"},
		{"echo 404", echo.ErrNotFound, 404, "not_found", "Not Found"},
		{"echo 413 with message", echo.NewHTTPError(413, "too big"), 413, "body_too_large", "too big"},
		{"echo 429", echo.NewHTTPError(429), 429, "rate_limited", "Too Many Requests"},
		{"anything else is ours: 500 without internals", errors.New("db password wrong"), 500, "internal", "internal error"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			status, body := Render(c.err)
			if status != c.status || body.Error.Code != c.code || body.Error.Message != c.text {
				t.Errorf("Render = %d %+v, want %d %s %q", status, body, c.status, c.code, c.text)
			}
		})
	}
}

func TestCounts(t *testing.T) {
	var nilCounts *Counts
	nilCounts.Add(400, "x") // counts nothing, does not panic
	if got := nilCounts.Snapshot(); len(got) != 0 {
		t.Errorf("nil snapshot %v", got)
	}
	var c Counts
	if got := c.Snapshot(); got == nil || len(got) != 0 {
		t.Errorf("empty snapshot %#v, want an empty non-nil slice (JSON [])", got)
	}
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 100 {
				c.Add(http.StatusBadRequest, "invalid_topic")
				c.Add(http.StatusUnauthorized, "missing_token")
			}
		})
	}
	wg.Wait()
	c.Add(http.StatusBadRequest, "bad_query")
	want := []Count{{400, "bad_query", 1}, {400, "invalid_topic", 800}, {401, "missing_token", 800}}
	if got := c.Snapshot(); !reflect.DeepEqual(got, want) {
		t.Errorf("snapshot %v, want %v", got, want)
	}
}
