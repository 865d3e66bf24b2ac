package schedule

import "math/bits"

// nodeHeap orders eligible nodes by their demand at the sweep position as a
// fraction of their capacity (lowest first, ties by node index, i.e. by id).
// It is indexed so that one node's key can be fixed in O(log n) after a
// placement. container/heap would do, but its interface boxing shows up in the
// 480,000-deadline benchmark.
type nodeHeap struct {
	key  []int64 // per node index: demand at the sweep position, micro-GPUs
	cap  []int64 // per node index: capacity, micro-GPUs
	h    []int32 // heap of node indices
	slot []int32 // per node index: position in h, -1 when absent
}

// lessRatio reports a/ca < b/cb for non-negative values, exactly.
func lessRatio(a, ca, b, cb int64) bool {
	h1, l1 := bits.Mul64(uint64(a), uint64(cb))
	h2, l2 := bits.Mul64(uint64(b), uint64(ca))
	return h1 < h2 || (h1 == h2 && l1 < l2)
}

func (q *nodeHeap) less(i, j int) bool {
	a, b := q.h[i], q.h[j]
	switch {
	case lessRatio(q.key[a], q.cap[a], q.key[b], q.cap[b]):
		return true
	case lessRatio(q.key[b], q.cap[b], q.key[a], q.cap[a]):
		return false
	}
	return a < b
}

func (q *nodeHeap) swap(i, j int) {
	q.h[i], q.h[j] = q.h[j], q.h[i]
	q.slot[q.h[i]] = int32(i)
	q.slot[q.h[j]] = int32(j)
}

func (q *nodeHeap) up(i int) {
	for i > 0 {
		p := (i - 1) / 2
		if !q.less(i, p) {
			return
		}
		q.swap(i, p)
		i = p
	}
}

func (q *nodeHeap) down(i int) {
	n := len(q.h)
	for {
		l := 2*i + 1
		if l >= n {
			return
		}
		m := l
		if r := l + 1; r < n && q.less(r, l) {
			m = r
		}
		if !q.less(m, i) {
			return
		}
		q.swap(i, m)
		i = m
	}
}

// init heapifies h in place.
func (q *nodeHeap) init() {
	for i, n := range q.h {
		q.slot[n] = int32(i)
	}
	for i := len(q.h)/2 - 1; i >= 0; i-- {
		q.down(i)
	}
}

func (q *nodeHeap) top() int32 { return q.h[0] }

func (q *nodeHeap) pop() int32 {
	n := q.h[0]
	last := len(q.h) - 1
	q.swap(0, last)
	q.h = q.h[:last]
	q.slot[n] = -1
	if last > 0 {
		q.down(0)
	}
	return n
}

func (q *nodeHeap) push(n int32) {
	q.h = append(q.h, n)
	q.slot[n] = int32(len(q.h) - 1)
	q.up(len(q.h) - 1)
}

// fix restores the order after node n's key changed (no-op if absent).
func (q *nodeHeap) fix(n int32) {
	i := q.slot[n]
	if i < 0 {
		return
	}
	q.down(int(i))
	q.up(int(q.slot[n]))
}
