package admin

import (
	"net/http"
	"strconv"

	"github.com/labstack/echo/v4"
)

// pageLimit reads the limit query parameter: DefaultPageLimit when absent,
// else an integer in 1..MaxPageLimit.
func pageLimit(c echo.Context) (int, error) {
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
