package admin

import "github.com/ssecluster/ssecluster/internal/apierr"

// apiError is every error a handler answers with: the public API's shape,
// {"error":{"code","message"}} (package apierr).
type apiError = apierr.Error

func errorf(status int, code, format string, args ...any) *apiError {
	return apierr.New(status, code, format, args...)
}
