package sse

import "strconv"

// ChunkEnd is the last chunk and empty trailer that end an HTTP/1.1 chunked
// body (RFC 9112 §7.1). Write it once, when closing a hijacked stream
// cleanly; a browser then reconnects after its retry delay.
const ChunkEnd = "0\r\n\r\n"

// AppendChunk appends payload to dst framed as one HTTP/1.1 chunk,
// "<hex length>\r\n<payload>\r\n". An empty payload appends nothing, because
// a zero-length chunk would end the body.
func AppendChunk(dst []byte, payload []byte) []byte {
	if len(payload) == 0 {
		return dst
	}
	dst = AppendChunkHeader(dst, len(payload))
	dst = append(dst, payload...)
	return append(dst, "\r\n"...)
}

// AppendChunkHeader appends the chunk-size line "<hex n>\r\n" for a writer
// that appends the n payload bytes itself and then "\r\n". For n <= 0 it
// appends nothing: "0\r\n" would start the last chunk and end the body.
func AppendChunkHeader(dst []byte, n int) []byte {
	if n <= 0 {
		return dst
	}
	dst = strconv.AppendUint(dst, uint64(n), 16)
	return append(dst, "\r\n"...)
}
