package admin

import "github.com/ssecluster/ssecluster/node"

// maxTopicLen is the longest topic name.
const maxTopicLen = node.MaxTopicLen

// validTopic reports whether t is a topic the public API accepts:
// ^[A-Za-z0-9][A-Za-z0-9._:@/-]*$, 1..maxTopicLen bytes. It repeats the
// node's rule (node.validTopic is unexported) so a bad topic is a 400
// here before it reaches the node.
func validTopic(t string) bool {
	if len(t) == 0 || len(t) > maxTopicLen || !alnum(t[0]) {
		return false
	}
	for i := 1; i < len(t); i++ {
		c := t[i]
		if !alnum(c) && c != '.' && c != '_' && c != ':' && c != '@' && c != '/' && c != '-' {
			return false
		}
	}
	return true
}

func alnum(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
}

// validNodeID reports whether id is a node id the node accepts:
// 1..64 characters of [A-Za-z0-9._-].
func validNodeID(id string) bool {
	if len(id) == 0 || len(id) > 64 {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !alnum(c) && c != '.' && c != '_' && c != '-' {
			return false
		}
	}
	return true
}
