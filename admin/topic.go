package admin

import "github.com/ssecluster/ssecluster/node"

// maxTopicLen is the longest topic name.
const maxTopicLen = node.MaxTopicLen

// validTopic and validNodeID are the node's own rules, so a bad topic or
// node id is a 400 here before it reaches the node.
func validTopic(t string) bool { return node.ValidTopic(t) }

func validNodeID(id string) bool { return node.ValidNodeID(id) }
