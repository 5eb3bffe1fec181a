package admin

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"math"
	"mime"
	"net/http"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/ssecluster/ssecluster/node"
)

// drainRequest is the body of the drain endpoints (optional: an empty
// body drains over the node's default window).
type drainRequest struct {
	// WindowS is the window the streams' closes are spread over, in
	// seconds, 0 to MaxDrainWindow; 0 or absent: the node's DRAIN_WINDOW.
	WindowS *float64 `json:"window_s"`
}

// drainResponse is the answer (202) of the drain endpoints.
type drainResponse struct {
	NodeID string `json:"node_id"`
	// Queued is true when the drain was sent to another node through the
	// registry: it starts when that node takes its commands (within
	// Config.CommandPoll), and Drain is its status as it last reported it.
	Queued bool             `json:"queued"`
	Drain  node.DrainStatus `json:"drain"`
}

// maxDrainBody bounds a drain request's body.
const maxDrainBody = 4 << 10

// postDrain answers POST /admin/v1/drain: drain this node.
func (s *Server) postDrain(c echo.Context) error {
	window, err := readDrainRequest(c)
	if err != nil {
		return err
	}
	return s.drainSelf(c, window)
}

func (s *Server) drainSelf(c echo.Context, window time.Duration) error {
	s.log.Info("drain requested through the admin API", "window", window.String(), "remote", c.Request().RemoteAddr)
	s.node.Drain(window)
	return c.JSON(http.StatusAccepted, drainResponse{NodeID: s.nodeID, Drain: s.node.DrainStatus()})
}

// postNodeDrain answers POST /admin/v1/nodes/{id}/drain: drain any live
// node of the cluster, this one included.
func (s *Server) postNodeDrain(c echo.Context) error {
	id := c.Param("id")
	if !validNodeID(id) {
		return errorf(http.StatusBadRequest, "invalid_node_id", "node id must be 1 to 64 characters of [A-Za-z0-9._-]")
	}
	window, err := readDrainRequest(c)
	if err != nil {
		return err
	}
	if id == s.nodeID {
		return s.drainSelf(c, window)
	}
	ctx, cancel := context.WithTimeout(c.Request().Context(), s.cfg.RegistryTimeout)
	defer cancel()
	cmd := Command{Op: OpDrain, WindowS: window.Seconds(), From: s.nodeID, SentAt: s.now().UTC()}
	if err := s.reg.Send(ctx, id, cmd, s.cfg.TTL); err != nil {
		if errors.Is(err, ErrUnknownNode) {
			return errorf(http.StatusNotFound, "unknown_node", "no live node %q in the cluster (GET /admin/v1/nodes lists them)", id)
		}
		return s.registryError(err)
	}
	s.log.Info("drain of another node sent through the registry", "target", id, "window", window.String(), "remote", c.Request().RemoteAddr)
	resp := drainResponse{NodeID: id, Queued: true}
	// Its last reported status, best effort: the command is already sent.
	if entries, err := s.reg.Nodes(ctx); err == nil {
		for _, e := range entries {
			if e.NodeID != id {
				continue
			}
			var r struct {
				Drain node.DrainStatus `json:"drain"`
			}
			if json.Unmarshal(e.Report, &r) == nil {
				resp.Drain = r.Drain
			}
		}
	}
	return c.JSON(http.StatusAccepted, resp)
}

// readDrainRequest reads the optional {"window_s":N} body.
func readDrainRequest(c echo.Context) (time.Duration, error) {
	req := c.Request()
	if ct := req.Header.Get("Content-Type"); ct != "" {
		mt, _, err := mime.ParseMediaType(ct)
		if err != nil || mt != "application/json" {
			return 0, errorf(http.StatusUnsupportedMediaType, "unsupported_media_type", "send the body as application/json")
		}
	}
	body, err := io.ReadAll(http.MaxBytesReader(c.Response(), req.Body, maxDrainBody))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return 0, errorf(http.StatusRequestEntityTooLarge, "body_too_large", "the body is larger than %d bytes", maxDrainBody)
		}
		return 0, errorf(http.StatusBadRequest, "bad_body", "the body could not be read")
	}
	if len(bytes.TrimSpace(body)) == 0 {
		return 0, nil
	}
	var dr drainRequest
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&dr); err != nil {
		return 0, errorf(http.StatusBadRequest, "invalid_json", `the body must be a JSON object {"window_s": seconds}`)
	}
	if _, err := dec.Token(); err != io.EOF { // one value, nothing after it
		return 0, errorf(http.StatusBadRequest, "invalid_json", `the body must be a JSON object {"window_s": seconds}`)
	}
	if dr.WindowS == nil {
		return 0, nil
	}
	w := *dr.WindowS
	if math.IsNaN(w) || w < 0 || w > MaxDrainWindow.Seconds() {
		return 0, errorf(http.StatusBadRequest, "invalid_window", "window_s must be from 0 to %.0f seconds (0: the node's default)", MaxDrainWindow.Seconds())
	}
	return time.Duration(w * float64(time.Second)), nil
}
