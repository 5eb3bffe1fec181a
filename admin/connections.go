package admin

import (
	"net/http"
	"strconv"

	"github.com/labstack/echo/v4"

	"github.com/ssecluster/ssecluster/node"
)

// connectionsResponse is the answer of GET /admin/v1/connections.
type connectionsResponse struct {
	// Connections are this node's streams, by id.
	Connections []node.ConnInfo `json:"connections"`
	// NextCursor continues the list (the cursor parameter); "" at the end.
	NextCursor string `json:"next_cursor"`
}

// getConnections answers GET /admin/v1/connections?topic=&limit=&cursor=.
func (s *Server) getConnections(c echo.Context) error {
	limit, err := pageLimit(c)
	if err != nil {
		return err
	}
	topic := c.QueryParam("topic")
	if topic != "" && !validTopic(topic) {
		return invalidTopic()
	}
	var after uint64
	if v := c.QueryParam("cursor"); v != "" {
		if after, err = parseID(v); err != nil {
			return errorf(http.StatusBadRequest, "invalid_cursor", "cursor is not one this API returned")
		}
	}
	conns, next := s.node.Connections(topic, limit, after)
	resp := connectionsResponse{Connections: conns}
	if resp.Connections == nil {
		resp.Connections = []node.ConnInfo{}
	}
	if next != 0 {
		resp.NextCursor = strconv.FormatUint(next, 10)
	}
	return c.JSON(http.StatusOK, resp)
}

// kickResponse is the answer of DELETE /admin/v1/connections/{id}.
type kickResponse struct {
	ID     uint64 `json:"id"`
	Kicked bool   `json:"kicked"`
}

// deleteConnection answers DELETE /admin/v1/connections/{id}: the stream
// is closed with a retry hint and counted as kicked.
func (s *Server) deleteConnection(c echo.Context) error {
	id, err := parseID(c.Param("id"))
	if err != nil {
		return errorf(http.StatusBadRequest, "invalid_id", "connection id must be a positive decimal integer")
	}
	if !s.node.Kick(id) {
		return errorf(http.StatusNotFound, "unknown_connection", "no connection %d on this node (connections are per node; it may have closed)", id)
	}
	s.log.Info("connection kicked through the admin API", "conn_id", id, "remote", c.Request().RemoteAddr)
	return c.JSON(http.StatusOK, kickResponse{ID: id, Kicked: true})
}

// parseID parses a connection id: decimal digits only, positive.
func parseID(v string) (uint64, error) {
	for i := 0; i < len(v); i++ {
		if v[i] < '0' || v[i] > '9' {
			return 0, strconv.ErrSyntax
		}
	}
	id, err := strconv.ParseUint(v, 10, 64)
	if err == nil && id == 0 {
		err = strconv.ErrRange
	}
	return id, err
}
