package loadtest

import "testing"

func TestPayload(t *testing.T) {
	b := AppendPayload(nil, "load-7", 42, 1767225600123456789)
	want := `{"topic":"load-7","seq":42,"sent_ns":1767225600123456789}`
	if string(b) != want {
		t.Fatalf("AppendPayload = %s, want %s", b, want)
	}
	tests := []struct {
		name string
		data string
		want Payload
		ok   bool
	}{
		{"exact", want, Payload{"load-7", 42, 1767225600123456789}, true},
		{"reformatted", `{ "seq": 3, "topic": "a", "sent_ns": 5 }`, Payload{"a", 3, 5}, true},
		{"not json", `hello`, Payload{}, false},
		{"no seq", `{"topic":"a","sent_ns":5}`, Payload{}, false},
		{"trailing", want + "x", Payload{}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := ParsePayload(tc.data)
			if ok != tc.ok || got != tc.want {
				t.Errorf("ParsePayload(%q) = %+v, %v; want %+v, %v", tc.data, got, ok, tc.want, tc.ok)
			}
		})
	}
	if n := testing.AllocsPerRun(100, func() { _, _ = ParsePayload(want) }); n != 0 {
		t.Errorf("ParsePayload of the exact form allocates %v times", n)
	}
}

// TestPayloadRef checks that the bytes form reads what ParsePayload reads,
// and the exact form without allocating.
func TestPayloadRef(t *testing.T) {
	exact := string(AppendPayload(nil, "load-7", 42, 1767225600123456789))
	for _, data := range []string{
		exact,
		`{ "seq": 3, "topic": "a", "sent_ns": 5 }`,
		`{"topic":"a","seq":99999999999999999999,"sent_ns":5}`,
		`{"topic":"a\"b","seq":1,"sent_ns":5}`,
		`{"topic":"","seq":1,"sent_ns":5}`,
		`{"topic":"a","seq":1,"sent_ns":5}x`,
		`hello`,
		``,
	} {
		want, wantOK := ParsePayload(data)
		got, ok := parsePayloadRef([]byte(data))
		if ok != wantOK || ok && (string(got.Topic) != want.Topic || got.Seq != want.Seq || got.SentNs != want.SentNs) {
			t.Errorf("parsePayloadRef(%q) = %q %d %d %v; ParsePayload %+v %v", data, got.Topic, got.Seq, got.SentNs, ok, want, wantOK)
		}
	}
	b := []byte(exact)
	if n := testing.AllocsPerRun(100, func() { _, _ = parsePayloadRef(b) }); n != 0 {
		t.Errorf("parsePayloadRef of the exact form allocates %v times", n)
	}
}
