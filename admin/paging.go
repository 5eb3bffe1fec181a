package admin

import (
	"net/http"
	"net/url"
	"strconv"

	"github.com/labstack/echo/v4"
)

// pageLimit reads the limit query parameter: DefaultPageLimit when absent,
// else an integer in 1..MaxPageLimit. It first checks that the query
// parses at all (Echo's QueryParam would ignore the error).
func pageLimit(c echo.Context) (int, error) {
	if _, err := url.ParseQuery(c.Request().URL.RawQuery); err != nil {
		return 0, errorf(http.StatusBadRequest, "bad_query", "query string does not parse")
	}
	v := c.QueryParam("limit")
	if v == "" {
		return DefaultPageLimit, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 || n > MaxPageLimit {
		return 0, errorf(http.StatusBadRequest, "invalid_limit", "limit must be an integer from 1 to %d", MaxPageLimit)
	}
	return n, nil
}
