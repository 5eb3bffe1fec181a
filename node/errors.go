package node

import "github.com/ssecluster/ssecluster/internal/apierr"

// apiError is every error a handler answers with (package apierr renders
// it as {"error":{"code","message"}} and counts it).
type apiError = apierr.Error

func errorf(status int, code, format string, args ...any) *apiError {
	return apierr.New(status, code, format, args...)
}
