package node

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"mime"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/labstack/echo/v4"

	"github.com/ssecluster/ssecluster/node/sse"
	"github.com/ssecluster/ssecluster/pubsub"
)

// MaxIdempotencyKeyLen bounds idempotency keys.
const MaxIdempotencyKeyLen = 200

// publishEvent is one event of a publish request.
type publishEvent struct {
	Topic          string          `json:"topic"`
	Event          string          `json:"event"`
	Data           json.RawMessage `json:"data"`
	IdempotencyKey string          `json:"idempotency_key"`
}

type publishResponse struct {
	IDs []string `json:"ids"`
}

// publish serves POST /v1/publish: one event object or an array of them.
// It answers only once the broker holds every event.
func (s *Server) publish(c echo.Context) error {
	req := c.Request()
	grant, err := s.publishAuth(c)
	if err != nil {
		return err
	}
	if ct := req.Header.Get("Content-Type"); ct != "" {
		if mt, _, err := mime.ParseMediaType(ct); err != nil || mt != "application/json" {
			return errorf(http.StatusUnsupportedMediaType, "unsupported_media_type", "the body must be application/json")
		}
	}
	if req.ContentLength > s.cfg.MaxBodyBytes {
		return errorf(http.StatusRequestEntityTooLarge, "body_too_large", "the body exceeds %d bytes", s.cfg.MaxBodyBytes)
	}
	// The body must arrive within BodyTimeout of the request's start (the
	// read deadline limitRequest set); once read, the deadline goes, or it
	// would cancel the request's context during a slow broker write.
	body, err := io.ReadAll(http.MaxBytesReader(c.Response(), req.Body, s.cfg.MaxBodyBytes))
	_ = http.NewResponseController(c.Response()).SetReadDeadline(time.Time{})
	if err != nil {
		if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
			return errorf(http.StatusRequestEntityTooLarge, "body_too_large", "the body exceeds %d bytes", s.cfg.MaxBodyBytes)
		}
		if errors.Is(err, os.ErrDeadlineExceeded) {
			c.Response().Header().Set("Connection", "close")
			return errorf(http.StatusRequestTimeout, "body_timeout", "the body did not arrive within %s", s.cfg.BodyTimeout)
		}
		return errorf(http.StatusBadRequest, "bad_body", "reading the body failed")
	}
	events, err := s.decodePublish(body)
	if err != nil {
		return err
	}
	if key := req.Header.Get("Idempotency-Key"); key != "" {
		if len(events) != 1 {
			return errorf(http.StatusBadRequest, "invalid_idempotency_key", "the Idempotency-Key header applies to a single event; put idempotency_key in each event of a batch")
		}
		if events[0].IdempotencyKey != "" && events[0].IdempotencyKey != key {
			return errorf(http.StatusBadRequest, "invalid_idempotency_key", "Idempotency-Key header and idempotency_key field differ")
		}
		events[0].IdempotencyKey = key
	}
	msgs := make([]pubsub.Message, len(events))
	for i := range events {
		m, err := toMessage(&events[i], i, s.cfg.MaxDataBytes)
		if err != nil {
			return err
		}
		msgs[i] = m
	}
	if err := checkPublish(grant, events); err != nil { // topics are valid now
		return err
	}

	ctx, cancel := context.WithTimeout(req.Context(), s.cfg.PublishTimeout)
	defer cancel()
	ids, err := s.broker.Publish(ctx, msgs)
	switch {
	case err == nil:
	case errors.Is(err, pubsub.ErrStoreFull):
		s.log.Warn("publish refused: store full", "err", err)
		return errorf(http.StatusServiceUnavailable, "broker_full",
			"the broker is out of memory and refuses writes; nothing was stored; retry later")
	case errors.Is(err, pubsub.ErrNotReplicated):
		s.log.Warn("publish not replicated", "err", err)
		return errorf(http.StatusServiceUnavailable, "publish_not_replicated",
			"the events were stored on the primary but not confirmed by enough replicas in time; the outcome is unknown: retry with the same idempotency keys")
	case errors.Is(err, pubsub.ErrUnavailable), errors.Is(err, pubsub.ErrClosed):
		s.log.Warn("publish failed", "err", err)
		return errorf(http.StatusServiceUnavailable, "broker_unavailable", "the broker is unreachable; nothing was stored")
	default:
		// A timeout or a broken connection after the write: the events may
		// or may not be stored. Retrying with the same idempotency keys is
		// safe; without keys a retry may store them twice.
		s.log.Warn("publish outcome unknown", "err", err)
		return errorf(http.StatusServiceUnavailable, "publish_outcome_unknown",
			"the broker did not confirm the write; retry with the same idempotency keys")
	}
	s.stats.Published.Add(int64(len(ids)))
	resp := publishResponse{IDs: make([]string, len(ids))}
	for i, id := range ids {
		resp.IDs[i] = id.String()
	}
	return c.JSON(http.StatusOK, resp)
}

// decodePublish parses one event object or an array of them, strictly:
// unknown fields and trailing data are errors.
func (s *Server) decodePublish(body []byte) ([]publishEvent, error) {
	trimmed := bytes.TrimLeft(body, " \t\r\n")
	if len(trimmed) == 0 {
		return nil, errorf(http.StatusBadRequest, "invalid_json", "the body is empty")
	}
	if trimmed[0] != '{' && trimmed[0] != '[' {
		return nil, errorf(http.StatusBadRequest, "invalid_json", "expected an event object or an array of event objects")
	}
	dec := json.NewDecoder(bytes.NewReader(trimmed))
	dec.DisallowUnknownFields()
	var events []publishEvent
	var err error
	if trimmed[0] == '[' {
		err = dec.Decode(&events)
	} else {
		events = make([]publishEvent, 1)
		err = dec.Decode(&events[0])
	}
	if err == nil {
		if _, terr := dec.Token(); terr != io.EOF {
			err = errors.New("trailing data after the JSON value")
		}
	}
	if err != nil {
		return nil, errorf(http.StatusBadRequest, "invalid_json", "%s", jsonErrorMessage(err))
	}
	if len(events) == 0 {
		return nil, errorf(http.StatusBadRequest, "empty_batch", "the batch holds no event")
	}
	if len(events) > s.cfg.MaxBatch {
		return nil, errorf(http.StatusRequestEntityTooLarge, "batch_too_large", "at most %d events per request", s.cfg.MaxBatch)
	}
	return events, nil
}

// jsonErrorMessage describes a decoding error without echoing the input.
func jsonErrorMessage(err error) string {
	var syn *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &syn):
		return "malformed JSON at byte " + strconv.FormatInt(syn.Offset, 10)
	case errors.As(err, &typ):
		if typ.Field != "" {
			return "field " + typ.Field + " has the wrong type"
		}
		return "expected an event object or an array of event objects"
	case errors.Is(err, io.ErrUnexpectedEOF):
		return "the JSON ends too early"
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		return "unknown field " + strings.TrimPrefix(err.Error(), "json: unknown field ")
	}
	return err.Error()
}

// toMessage validates one event (i is its index, for messages; maxData
// bounds its data).
func toMessage(ev *publishEvent, i, maxData int) (pubsub.Message, error) {
	at := "event " + strconv.Itoa(i)
	if !validTopic(ev.Topic) {
		return pubsub.Message{}, errorf(http.StatusBadRequest, "invalid_topic",
			"%s: topic must be 1..%d bytes of [A-Za-z0-9._:@/-] starting with a letter or digit", at, MaxTopicLen)
	}
	if ev.Event != "" {
		t, err := sse.NewType(ev.Event)
		if err != nil {
			return pubsub.Message{}, errorf(http.StatusBadRequest, "invalid_event",
				"%s: event must be 1..200 bytes of UTF-8 without CR, LF or NUL", at)
		}
		if t == resetType {
			return pubsub.Message{}, errorf(http.StatusBadRequest, "reserved_event",
				"%s: the event type reset is reserved for history resets", at)
		}
	}
	if len(ev.Data) == 0 || string(ev.Data) == "null" {
		return pubsub.Message{}, errorf(http.StatusBadRequest, "missing_data", "%s: data is required (null is no data)", at)
	}
	if k := ev.IdempotencyKey; k != "" && !validIdempotencyKey(k) {
		return pubsub.Message{}, errorf(http.StatusBadRequest, "invalid_idempotency_key",
			"%s: idempotency_key must be 1..%d printable ASCII characters", at, MaxIdempotencyKeyLen)
	}
	var data []byte
	if ev.Data[0] == '"' {
		var str string
		if err := json.Unmarshal(ev.Data, &str); err != nil {
			return pubsub.Message{}, errorf(http.StatusBadRequest, "invalid_json", "%s: data is not a valid JSON string", at)
		}
		data = []byte(str)
	} else {
		var buf bytes.Buffer
		if err := json.Compact(&buf, ev.Data); err != nil {
			return pubsub.Message{}, errorf(http.StatusBadRequest, "invalid_json", "%s: data is not valid JSON", at)
		}
		data = buf.Bytes()
	}
	if len(data) > maxData {
		return pubsub.Message{}, errorf(http.StatusRequestEntityTooLarge, "data_too_large", "%s: data exceeds %d bytes", at, maxData)
	}
	return pubsub.Message{Topic: ev.Topic, Type: ev.Event, Data: data, IdempotencyKey: ev.IdempotencyKey}, nil
}

func validIdempotencyKey(k string) bool {
	if len(k) > MaxIdempotencyKeyLen || !utf8.ValidString(k) {
		return false
	}
	for i := 0; i < len(k); i++ {
		if k[i] < 0x20 || k[i] > 0x7e {
			return false
		}
	}
	return true
}
