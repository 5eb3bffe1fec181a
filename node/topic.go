package node

// MaxTopicLen is the longest topic name.
const MaxTopicLen = 200

// validTopic reports whether t matches ^[A-Za-z0-9][A-Za-z0-9._:@/-]*$ and is
// 1..MaxTopicLen bytes long.
func validTopic(t string) bool {
	if len(t) == 0 || len(t) > MaxTopicLen || !alnum(t[0]) {
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

// ValidTopic reports whether t is a topic the public API accepts (for the
// admin API, which checks topics before asking the node).
func ValidTopic(t string) bool { return validTopic(t) }

// ValidNodeID reports whether id is a valid Config.NodeID.
func ValidNodeID(id string) bool { return validNodeID(id) }
