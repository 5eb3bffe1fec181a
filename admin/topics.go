package admin

import (
	"context"
	"encoding/base64"
	"errors"
	"net/http"
	"net/url"
	"slices"
	"strings"

	"github.com/labstack/echo/v4"
)

// topicRow is one topic of GET /admin/v1/topics.
type topicRow struct {
	Topic string `json:"topic"`
	// LocalSubscribers are this node's streams on the topic, now.
	LocalSubscribers int64 `json:"local_subscribers"`
	// ClusterSubscribers are every live node's streams on it: this node's
	// now, the others' as last published (see topicsResponse.Complete).
	ClusterSubscribers int64 `json:"cluster_subscribers"`
	// Nodes is how many nodes have subscribers on it.
	Nodes int `json:"nodes"`
}

// topicsResponse is the answer of GET /admin/v1/topics.
type topicsResponse struct {
	// Topics with subscribers anywhere in the cluster, by name.
	Topics []topicRow `json:"topics"`
	// NextCursor continues the list (the cursor parameter); "" at the end.
	NextCursor string `json:"next_cursor"`
	// Complete is false when some other node has more topics than it
	// publishes (Config.MaxTopics, its most subscribed ones): topics only
	// it holds are then missing and cluster counts are lower bounds.
	Complete bool `json:"complete"`
}

// getTopics answers GET /admin/v1/topics?limit=&cursor=.
func (s *Server) getTopics(c echo.Context) error {
	limit, err := pageLimit(c)
	if err != nil {
		return err
	}
	after, err := decodeTopicCursor(c.QueryParam("cursor"))
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(c.Request().Context(), s.cfg.RegistryTimeout)
	defer cancel()
	others, err := s.reg.Topics(ctx)
	if err != nil {
		return s.registryError(err)
	}
	rows := make(map[string]*topicRow)
	row := func(t string) *topicRow {
		r := rows[t]
		if r == nil {
			r = &topicRow{Topic: t}
			rows[t] = r
		}
		return r
	}
	for _, t := range s.node.Topics() {
		if t.Subscribers <= 0 {
			continue
		}
		r := row(t.Topic)
		r.LocalSubscribers = int64(t.Subscribers)
		r.ClusterSubscribers += int64(t.Subscribers)
		r.Nodes++
	}
	resp := topicsResponse{Complete: true}
	for _, nt := range others {
		if nt.NodeID == s.nodeID { // this node's counts are taken live above
			continue
		}
		resp.Complete = resp.Complete && !nt.Truncated
		for _, t := range nt.Topics {
			if t.Subscribers <= 0 {
				continue
			}
			r := row(t.Topic)
			r.ClusterSubscribers += t.Subscribers
			r.Nodes++
		}
	}
	names := make([]string, 0, len(rows))
	for t := range rows {
		if t > after {
			names = append(names, t)
		}
	}
	slices.Sort(names)
	if len(names) > limit {
		names = names[:limit]
		resp.NextCursor = encodeTopicCursor(names[limit-1])
	}
	resp.Topics = make([]topicRow, len(names))
	for i, t := range names {
		resp.Topics[i] = *rows[t]
	}
	return c.JSON(http.StatusOK, resp)
}

// Topic cursors are the last topic of a page, base64url: opaque to
// clients, and the next page starts after it even if it is gone by then.
func encodeTopicCursor(topic string) string {
	return base64.RawURLEncoding.EncodeToString([]byte(topic))
}

func decodeTopicCursor(v string) (string, error) {
	if v == "" {
		return "", nil
	}
	b, err := base64.RawURLEncoding.DecodeString(v)
	if err != nil || !validTopic(string(b)) {
		return "", errorf(http.StatusBadRequest, "invalid_cursor", "cursor is not one this API returned")
	}
	return string(b), nil
}

// getTopic answers GET /admin/v1/topics/{topic}: the topic's local
// subscribers, its partition's stream position and retained history.
func (s *Server) getTopic(c echo.Context) error {
	topic, err := topicParam(c.Param("*"))
	if err != nil {
		return err
	}
	d, err := s.node.TopicInfo(c.Request().Context(), topic)
	if err != nil {
		return s.topicError(err)
	}
	return c.JSON(http.StatusOK, d)
}

// topicParam decodes and validates the topic of a path. Echo hands over
// the path as sent when it holds escapes (%2F); topics never need any.
func topicParam(raw string) (string, error) {
	t := raw
	if strings.Contains(t, "%") {
		var err error
		if t, err = url.PathUnescape(raw); err != nil {
			return "", invalidTopic()
		}
	}
	if !validTopic(t) {
		return "", invalidTopic()
	}
	return t, nil
}

func invalidTopic() error {
	return errorf(http.StatusBadRequest, "invalid_topic",
		"topic must be 1 to %d bytes matching ^[A-Za-z0-9][A-Za-z0-9._:@/-]*$", maxTopicLen)
}

// topicError turns a TopicInfo failure into the answer.
func (s *Server) topicError(err error) error {
	if errors.Is(err, context.Canceled) {
		return err
	}
	s.log.Warn("topic info", "err", err)
	return errorf(http.StatusServiceUnavailable, "broker_unavailable", "the broker could not be read; try again")
}
