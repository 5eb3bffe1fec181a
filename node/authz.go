package node

import (
	"errors"
	"net/http"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/ssecluster/ssecluster/node/auth"
)

// Authorization (Config.Auth, Config.PublishToken). With neither the node
// is open. A stream needs a JWT that grants every one of its topics for
// subscribing, found in the Authorization header, the token query
// parameter (EventSource cannot set headers) or the AuthCookie cookie. A
// publish needs PublishToken or a JWT that grants every topic of the batch
// for publishing, in the Authorization header only: a cookie would let any
// web page publish with a visitor's credentials (cross-site request
// forgery), and a query parameter ends up in access logs.

// subscribeGrant returns the grant of a stream request; nil when the node
// runs open.
func (s *Server) subscribeGrant(c echo.Context) (*auth.Grant, error) {
	if s.cfg.Auth == nil {
		return nil, nil
	}
	tok, err := auth.FromRequest(c.Request(), s.cfg.AuthCookie)
	if err != nil {
		return nil, errorf(http.StatusBadRequest, "ambiguous_token",
			"send one token: in the Authorization header, the token query parameter or the %s cookie", s.cfg.AuthCookie)
	}
	if tok == "" {
		return nil, s.unauthorized(c, "missing_token",
			"a token is required: Authorization: Bearer, the token query parameter or the "+s.cfg.AuthCookie+" cookie")
	}
	g, err := s.cfg.Auth.Verify(tok)
	if err != nil {
		return nil, s.tokenError(c, err)
	}
	return g, nil
}

// checkSubscribe answers 403 when g does not grant every topic.
func checkSubscribe(g *auth.Grant, topics []string) error {
	if g == nil {
		return nil
	}
	for i, t := range topics {
		if !g.CanSubscribe(t) {
			return errorf(http.StatusForbidden, "forbidden_topic", "the token does not grant subscribing to topic %d (%s)", i+1, t)
		}
	}
	return nil
}

// publishAuth checks a publish request's credentials before its body is
// read. It returns the grant to check the batch's topics against, nil
// when every topic is allowed (open node, or PublishToken).
func (s *Server) publishAuth(c echo.Context) (*auth.Grant, error) {
	if s.cfg.PublishToken == "" && s.cfg.Auth == nil {
		return nil, nil
	}
	req := c.Request()
	if len(req.Header.Values("Authorization")) > 1 {
		return nil, errorf(http.StatusBadRequest, "ambiguous_token", "send one Authorization header")
	}
	h := req.Header.Get("Authorization")
	tok := auth.Bearer(h)
	if tok == "" {
		return nil, s.unauthorized(c, "missing_token", "publishing requires Authorization: Bearer with a publish token")
	}
	if s.publishToken.Matches(tok) {
		return nil, nil
	}
	if s.cfg.Auth == nil {
		return nil, s.unauthorized(c, "invalid_token", "the publish token is not valid")
	}
	g, err := s.cfg.Auth.Verify(tok)
	if err != nil {
		return nil, s.tokenError(c, err)
	}
	return g, nil
}

// checkPublish answers 403 when g does not grant an event's topic.
func checkPublish(g *auth.Grant, events []publishEvent) error {
	if g == nil {
		return nil
	}
	for i := range events {
		if !g.CanPublish(events[i].Topic) {
			return errorf(http.StatusForbidden, "forbidden_topic", "event %d: the token does not grant publishing to topic %s", i, events[i].Topic)
		}
	}
	return nil
}

// tokenError is the 401 of a token that did not verify. The messages are
// package auth's fixed texts: never the token, never a claim's value.
func (s *Server) tokenError(c echo.Context, err error) error {
	switch {
	case errors.Is(err, auth.ErrExpired):
		return s.unauthorized(c, "token_expired", "the token has expired")
	case errors.Is(err, auth.ErrNotYetValid):
		return s.unauthorized(c, "token_not_yet_valid", "the token is not valid yet")
	}
	msg := "the token is not valid"
	for _, k := range []struct {
		err error
		msg string
	}{
		{auth.ErrTokenTooLong, "the token is too long"},
		{auth.ErrMalformed, "the token is not a well-formed JWT"},
		{auth.ErrAlgorithm, "the token's signing algorithm is not accepted"},
		{auth.ErrSignature, "the token's signature does not verify"},
		{auth.ErrAudience, "the token is for another audience"},
		{auth.ErrIssuer, "the token is from another issuer"},
		{auth.ErrClaims, "the token's sse claim is missing or malformed"},
	} {
		if errors.Is(err, k.err) {
			msg = k.msg
			break
		}
	}
	return s.unauthorized(c, "invalid_token", msg)
}

func (s *Server) unauthorized(c echo.Context, code, msg string) error {
	// RFC 6750 §3: error codes only, never the token.
	v := `Bearer realm="ssecluster"`
	if code != "missing_token" {
		v += `, error="invalid_token"`
	}
	c.Response().Header().Set("WWW-Authenticate", v)
	return errorf(http.StatusUnauthorized, code, "%s", msg)
}

// tokenDeadline is when a stream admitted with g must end: when the node
// would start refusing its token (expiry plus the leeway). Zero: never.
func (s *Server) tokenDeadline(g *auth.Grant) time.Time {
	if g == nil || g.Expires.IsZero() {
		return time.Time{}
	}
	return g.Expires.Add(s.cfg.Auth.Leeway())
}
