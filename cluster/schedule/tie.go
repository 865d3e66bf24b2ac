package schedule

// tieBreak reports whether node a should get deadline k of parts partitions
// rather than node b when both would be equally busy with it. The node
// owning less GPU time wins, then the one owning fewer deadlines, then a
// hash of the deadline and the node id. For an empty deadline the count
// comes first: it costs no GPU time, and going by GPU time alone put every
// empty deadline of a lightly used cluster on whichever node happened to
// own the least work (77/37/78). Not the id alone: with equal nodes every tie then went to
// the node whose id sorts first (77/79/40 deadlines over three equal nodes).
// The hash is stable across processes and Go versions, so every leader
// breaks the same ties the same way.
func (p *planner) tieBreak(k Key, parts int32, a, b int32) bool {
	if b < 0 {
		return true
	}
	na, nb := &p.nodes[a], &p.nodes[b]
	switch {
	case parts == 0 && na.deadlines != nb.deadlines:
		return na.deadlines < nb.deadlines
	case na.work != nb.work:
		return na.work < nb.work
	case na.deadlines != nb.deadlines:
		return na.deadlines < nb.deadlines
	}
	ha, hb := tieHash(k, na.id), tieHash(k, nb.id)
	if ha != hb {
		return ha < hb
	}
	return a < b
}

// tieHash is FNV-1a over the miner, the deadline and the node id.
func tieHash(k Key, node string) uint64 {
	const prime = 1099511628211
	h := uint64(14695981039346656037)
	for i := range 8 {
		h = (h ^ uint64(byte(k.Miner>>(8*i)))) * prime
	}
	h = (h ^ uint64(k.Deadline)) * prime
	for i := range len(node) {
		h = (h ^ uint64(node[i])) * prime
	}
	return h
}
