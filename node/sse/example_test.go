package sse_test

import (
	"fmt"
	"io"
	"strings"

	"github.com/ssecluster/ssecluster/node/sse"
)

var typeUpdate = sse.MustType("update")

func ExampleAppendEvent() {
	buf := make([]byte, 0, 256) // reused across events: no allocation
	buf = sse.AppendEvent(buf[:0], []byte("e1:17-0"), typeUpdate, []byte("line one\r\n line two"))
	fmt.Print(string(buf))
	// Output:
	// id: e1:17-0
	// event: update
	// data: line one
	// data:  line two
}

// A node encodes the body of an event once and gives each connection its own
// id line, then frames the result as an HTTP/1.1 chunk.
func ExampleAppendBody() {
	body := sse.AppendBody(nil, typeUpdate, []byte(`{"n":1}`))

	var frame []byte
	frame = sse.AppendID(frame, []byte("e1:18-0"))
	frame = append(frame, body...)
	frame = append(frame, '\n')

	chunk := sse.AppendChunk(nil, frame)
	fmt.Printf("%q\n", chunk)
	// Output:
	// "29\r\nid: e1:18-0\nevent: update\ndata: {\"n\":1}\n\n\r\n"
}

func ExampleParser() {
	stream := ": connected\nretry: 2500\n\n" +
		"id: 1\nevent: update\ndata: a\ndata: b\n\n" +
		"data: no id here\n\n" +
		"id: 2\n\n" +
		"data: cut off by EOF"
	p := sse.NewParser(strings.NewReader(stream))
	for {
		ev, err := p.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			fmt.Println("error:", err)
			return
		}
		fmt.Printf("dispatch=%v type=%q data=%q id=%q retry=%d comments=%d\n",
			ev.Dispatch, ev.Type, ev.Data, ev.ID, ev.Retry, ev.Comments)
	}
	fmt.Println("resume from", p.LastEventID)
	// Output:
	// dispatch=false type="" data="" id="" retry=2500 comments=1
	// dispatch=true type="update" data="a\nb" id="1" retry=-1 comments=0
	// dispatch=true type="message" data="no id here" id="1" retry=-1 comments=0
	// dispatch=false type="" data="" id="2" retry=-1 comments=0
	// resume from 2
}

func ExampleDecoder() {
	// Bytes as reads from a socket return them: lines split anywhere.
	reads := []string{": connected\nretry: 25", "00\n\nid: 1\nevent: upd", "ate\ndata: a\ndata: b\n", "\ndata: no id here\n\ndata: cut off"}
	var d sse.Decoder
	for _, r := range reads {
		err := d.Feed([]byte(r), func(b sse.Block) {
			// b.ID and b.Data are only valid during the call.
			fmt.Printf("dispatch=%v type=%q data=%q id=%q retry=%d comments=%d\n",
				b.Dispatch, b.Type, b.Data, b.ID, b.Retry, b.Comments)
		})
		if err != nil {
			fmt.Println("error:", err)
			return
		}
	}
	fmt.Println("resume from", d.LastEventID())
	// Output:
	// dispatch=false type="" data="" id="" retry=2500 comments=1
	// dispatch=true type="update" data="a\nb" id="1" retry=-1 comments=0
	// dispatch=true type="message" data="no id here" id="1" retry=-1 comments=0
	// resume from 1
}
